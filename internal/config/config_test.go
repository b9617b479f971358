package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
)

func TestAuthority(t *testing.T) {
	for in, ok := range map[string]bool{
		"https://demodb.my.erp.net":     true,
		"https://demodb.my.erp.net/id":  true,
		"http://127.0.0.1:5080":         true,
		"http://localhost:5080/id":      true,
		"http://[::1]:80":               true,
		"http://demodb.my.erp.net":      false,
		"ftp://demodb.my.erp.net":       false,
		"demodb.my.erp.net":             false,
		"":                              false,
		"https://u:p@demodb.my.erp.net": false,
		"https://demodb.my.erp.net/#x":  false,
		"https://demodb.my.erp.net/#":   false,
		"https://demodb.my.erp.net/?":   false,
	} {
		if err := Authority("Authority", in); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
	if DomainAPI("DomainAPI", "") != nil || DomainAPI("DomainAPI", "http://x.example/api/") == nil {
		t.Error("DomainAPI: optional, same rule as Authority")
	}
}

func TestRedirectURL(t *testing.T) {
	for in, ok := range map[string]bool{
		"":                                     true,
		"https://app.example.com/callback":     true,
		"https://app.example.com/cb?x=1":       true,
		"http://127.0.0.1:8080/callback":       true,
		"/callback":                            false,
		"app.example.com":                      false,
		"http://app.example.com/callback":      false,
		"https://app.example.com/callback#x":   false,
		"https://u:p@app.example.com/callback": false,
	} {
		if err := RedirectURL("RedirectURL", in); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestClientIDAndSecret(t *testing.T) {
	for in, ok := range map[string]bool{
		"com.example/app": true, "": false, " ": false, "com.example/app\n": false, " com.example/app": false,
	} {
		if err := ClientID("ClientID", in); (err == nil) != ok {
			t.Errorf("ClientID %q: %v", in, err)
		}
	}
	if ClientSecret("ClientSecret", "", false, "") != nil || ClientSecret("ClientSecret", "", true, "x") == nil ||
		ClientSecret("ClientSecret", "s3cret\r\n", false, "") == nil || ClientSecret("ClientSecret", "a b:c%/=", true, "x") != nil {
		t.Error("ClientSecret")
	}
}

func TestScopes(t *testing.T) {
	if err := Scopes("Scopes", []string{"openid", "read", "DomainApi", "urn:x:y", "a!#$%&'()*+,-./:;<=>?@[]^_`{|}~"}); err != nil {
		t.Error(err)
	}
	for i, bad := range []string{"", "read update", "re\tad", `"read"`, `re\ad`, "lesé", "x\x7f"} {
		err := Scopes("Scopes", []string{"read", bad})
		var ce *auth.ConfigError
		if !errors.As(err, &ce) || ce.Field != "Scopes[1]" {
			t.Errorf("%d %q: %v", i, bad, err)
		}
	}
}

func TestKeys(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	if Keys("Keys", nil, false) != nil || Keys("Keys", nil, true) == nil || Keys("Keys", [][]byte{key, key[:16], key[:24]}, true) != nil {
		t.Error("Keys: lengths")
	}
	for text, hint := range map[string]string{
		base64.StdEncoding.EncodeToString(key):    "base64",
		base64.RawURLEncoding.EncodeToString(key): "base64",
		hex.EncodeToString(key):                   "hex",
		hex.EncodeToString(key[:16]) + "\n":       "hex",
		"not a key":                               "",
	} {
		err := Keys("Keys", [][]byte{key, []byte(text)}, true)
		var ce *auth.ConfigError
		if !errors.As(err, &ce) || ce.Field != "Keys[1]" {
			t.Fatalf("%q: %v", text, err)
		}
		if strings.Contains(ce.Reason, text) {
			t.Errorf("the reason shows the key: %v", err)
		}
		if got := strings.Contains(ce.Reason, "looks like "+hint+" text"); got != (hint != "") {
			t.Errorf("%q: hint %q missing or wrong: %v", text, hint, err)
		}
	}
}

func TestSmallRules(t *testing.T) {
	if AuthStyle("AuthStyle", oauth2.AuthStyleInHeader) != nil || AuthStyle("AuthStyle", 9) == nil {
		t.Error("AuthStyle")
	}
	if NotNegative("SessionTTL", 0) != nil || NotNegative("MaxLiveSessions", -1) == nil {
		t.Error("NotNegative")
	}
	err := First(nil, Err("B", "is bad"), Err("C", "is bad"))
	var ce *auth.ConfigError
	if !errors.As(err, &ce) || ce.Field != "B" || !errors.Is(err, auth.ErrMisconfigured) {
		t.Errorf("First: %v", err)
	}
}

func TestClientSecretFile(t *testing.T) {
	var ce *auth.ConfigError
	if err := ClientSecretFile("ClientSecretFile", "/run/secret", "s"); !errors.As(err, &ce) || ce.Field != "ClientSecretFile" {
		t.Fatalf("both set: %v", err)
	}
	if err := ClientSecretFile("ClientSecretFile", "/run/sec\nret", ""); !errors.As(err, &ce) || ce.Field != "ClientSecretFile" {
		t.Fatalf("newline: %v", err)
	}
	if ClientSecretFile("ClientSecretFile", "/run/secret", "") != nil || ClientSecretFile("ClientSecretFile", "", "s") != nil {
		t.Fatal("valid configurations refused")
	}
}
