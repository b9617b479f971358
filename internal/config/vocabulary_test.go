package config_test

import (
	"errors"
	"testing"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/hybrid"
	"github.com/erpnetgo/auth/reftoken"
)

// TestOneRulePerField: a field that several packages' Configs share is
// checked by the same rule in each, and reported the same way (issue 24:
// authcode let control characters through in ClientID and a secret's other
// control characters, clientcreds and authcode differed on scopes).
func TestOneRulePerField(t *testing.T) {
	const root, id, secret = "https://demodb.my.erp.net", "com.example/app", "s3cret"
	cb := "https://app.example.com/callback"
	newAll := map[string]func(authority, clientID, clientSecret string, scopes []string, keys [][]byte) error{
		"authcode": func(a, c, s string, sc []string, k [][]byte) error {
			x, err := authcode.New(authcode.Config{Authority: a, ClientID: c, ClientSecret: s, Scopes: sc, Keys: k, RedirectURL: cb})
			if err == nil {
				x.Close()
			}
			return err
		},
		"clientcreds": func(a, c, s string, sc []string, k [][]byte) error {
			x, err := clientcreds.New(clientcreds.Config{Authority: a, ClientID: c, ClientSecret: s, Scopes: sc})
			if err == nil {
				x.Close()
			}
			return err
		},
		"hybrid": func(a, c, s string, sc []string, k [][]byte) error {
			x, err := hybrid.New(hybrid.Config{Authority: a, ClientID: c, ClientSecret: s, UserScopes: sc, Keys: k, RedirectURL: cb})
			if err == nil {
				x.Close()
			}
			return err
		},
	}
	key := make([]byte, 32)
	for _, c := range []struct {
		name, field, reason         string
		authority, clientID, secret string
		scopes                      []string
		keys                        [][]byte
		scopeField                  map[string]string
	}{
		{name: "ClientID control character", field: "ClientID", authority: root, clientID: id + "\n", secret: secret},
		{name: "ClientID spaces around", field: "ClientID", authority: root, clientID: " " + id, secret: secret},
		{name: "secret control character", field: "ClientSecret", authority: root, clientID: id, secret: secret + "\t"},
		{name: "authority over http", field: "Authority", authority: "http://demodb.my.erp.net", clientID: id, secret: secret},
		{name: "non-ASCII scope", field: "Scopes[1]", authority: root, clientID: id, secret: secret, scopes: []string{"read", "lesé"},
			scopeField: map[string]string{"hybrid": "UserScopes[1]"}},
		{name: "quoted scope", field: "Scopes[0]", authority: root, clientID: id, secret: secret, scopes: []string{`"read"`},
			scopeField: map[string]string{"hybrid": "UserScopes[0]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			reasons := map[string]bool{}
			for pkg, newf := range newAll {
				err := newf(c.authority, c.clientID, c.secret, c.scopes, append(c.keys, key))
				var ce *auth.ConfigError
				if !errors.As(err, &ce) {
					t.Errorf("%s: %v", pkg, err)
					continue
				}
				want := c.field
				if f, ok := c.scopeField[pkg]; ok {
					want = f
				}
				if ce.Field != want {
					t.Errorf("%s: field %q, want %q", pkg, ce.Field, want)
				}
				reasons[ce.Reason] = true
			}
			if len(reasons) != 1 {
				t.Errorf("different reasons for one rule: %v", reasons)
			}
		})
	}
	// Authority and DomainAPI of reference tokens, Keys of the Redis store.
	tok := reftoken.MustParse("enrt_" + "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF")
	_, err1 := tok.Client(reftoken.Config{Authority: "http://demodb.my.erp.net"})
	_, err2 := clientcreds.New(clientcreds.Config{Authority: "http://demodb.my.erp.net", ClientID: id, ClientSecret: secret})
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Errorf("Authority: %v / %v", err1, err2)
	}
	_, err1 = redisstore.New(redisstore.Config{Addr: "127.0.0.1:1", Keys: [][]byte{key, []byte("c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcyEhISE=")}})
	_, err2 = authcode.New(authcode.Config{Authority: root, ClientID: id, Keys: [][]byte{key, []byte("c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcyEhISE=")}})
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Errorf("Keys: %v / %v", err1, err2)
	}
}
