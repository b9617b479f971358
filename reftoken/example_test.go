package reftoken_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/reftoken"
)

// A program calling an ERP.net instance with a personal or service access token.
func Example() {
	tok, err := reftoken.FromEnv("ERPNET_TOKEN")
	if err != nil {
		log.Fatal(err) // says which variable and what is wrong, never the token
	}
	client, err := tok.Client(reftoken.Config{Authority: "https://demodb.my.erp.net"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		"https://demodb.my.erp.net/api/domain/odata/Crm_Sales_Customers?$top=10", nil)
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	switch err := reftoken.CheckResponse(resp); {
	case errors.Is(err, reftoken.ErrTokenRejected):
		log.Fatal("the token expired or was revoked: issue a new one")
	case err != nil:
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
}

func ExampleParse() {
	tok, err := reftoken.Parse("enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok)
	fmt.Printf("%v %q %#v\n", tok, tok, tok)

	_, err = reftoken.Parse("enrt_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	fmt.Println(err)
	_, err = reftoken.Parse("enrt_0123456789ABCDEF")
	fmt.Println(err, errors.Is(err, reftoken.ErrMalformed))
	// Output:
	// enrt_…(redacted)
	// enrt_…(redacted) "enrt_…(redacted)" reftoken.Token("enrt_…(redacted)")
	// reftoken: malformed reference token: contains a lower-case hexadecimal digit at offset 15: the digits must be upper-case
	// reftoken: malformed reference token: has 16 characters after "enrt_", want 64 true
}

func ExampleToken_MarshalText() {
	tok := reftoken.MustParse("enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF")
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	logger.Info("calling ERP.net", "token", tok)

	cfg := struct {
		Instance string
		Token    reftoken.Token
	}{"https://demodb.my.erp.net", tok}
	b, _ := json.Marshal(cfg)
	fmt.Println(string(b))
	// Output:
	// {"level":"INFO","msg":"calling ERP.net","token":"enrt_…(redacted)"}
	// {"Instance":"https://demodb.my.erp.net","Token":"enrt_…(redacted)"}
}

func ExampleFromEnv() {
	tok, err := reftoken.FromEnv("ERPNET_TOKEN_EXAMPLE_UNSET")
	switch {
	case errors.Is(err, reftoken.ErrNoToken):
		fmt.Println("no token configured:", err)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("loaded", tok)
	}
	// Output: no token configured: reftoken: environment variable "ERPNET_TOKEN_EXAMPLE_UNSET" is not set
}

func ExampleToken_Client() {
	const raw = "enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
	// A stand-in for an ERP.net instance that knows one token, sent as X-Api-Key.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != raw {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"value":[]}`)
	}))
	defer srv.Close()

	tok := reftoken.MustParse(raw)
	client, err := tok.Client(reftoken.Config{Authority: srv.URL, Header: reftoken.APIKey})
	if err != nil {
		fmt.Println(err)
		return
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet,
		srv.URL+"/api/domain/odata/Crm_Sales_Customers?$top=10", nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, reftoken.CheckResponse(resp))

	// The token is bound to its instance: a request elsewhere is refused before it is sent.
	_, err = client.Get("https://example.com/")
	fmt.Println(errors.Is(err, auth.ErrMisconfigured))
	// Output:
	// 200 OK <nil>
	// true
}

func ExampleCheckResponse() {
	req, _ := http.NewRequest(http.MethodGet, "https://demodb.my.erp.net/api/domain/odata/Crm_Sales_Customers?$top=10", nil)
	resp := &http.Response{StatusCode: http.StatusForbidden, Request: req, Header: http.Header{
		"Www-Authenticate": {`Bearer realm="ERP.net", error="insufficient_scope", error_description="the token lacks scope read"`},
	}}
	err := reftoken.CheckResponse(resp)
	fmt.Println(errors.Is(err, reftoken.ErrNotPermitted))
	var ae *auth.Error
	if errors.As(err, &ae) {
		fmt.Println(ae.StatusCode, ae.Code)
	}
	fmt.Println(err)
	// Output:
	// true
	// 403 insufficient_scope
	// erpnet auth: API request failed: HTTP 403: insufficient_scope (the token lacks scope read): GET https://demodb.my.erp.net/api/domain/odata/Crm_Sales_Customers [not permitted]
}
