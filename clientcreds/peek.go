package clientcreds

import "github.com/erpnetgo/auth/internal/peek"

func init() {
	peek.SourceClientID = func(src any) string { return src.(*Source).cfg.ClientID }
	peek.SourceToken = func(src any) string {
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
