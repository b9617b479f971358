package clientcreds

import "github.com/erpnetgo/auth/internal/svcpeek"

func init() {
	svcpeek.Token = func(src any) string {
		s, _ := src.(*Source)
		if s == nil {
			return ""
		}
		if e := s.cache.Peek(); e != nil {
			return e.Token.AccessToken
		}
		return ""
	}
}
