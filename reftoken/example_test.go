package reftoken_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/erpnetgo/auth/internal/devserver"
	"github.com/erpnetgo/auth/reftoken"
)

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

func ExampleParseWith() {
	// Should ERP.net ever issue longer or base64url tokens, relax the check; the prefix and a
	// header-safe alphabet are still required.
	tok, err := reftoken.ParseWith("enrt_Zm9vYmFyLWJhei1xdXV4LTEyMzQ", reftoken.ParseOptions{AnyLength: true, B64Token: true})
	fmt.Println(tok, err)
	// Output: enrt_…(redacted) <nil>
}

func ExampleToken_LogValue() {
	tok := reftoken.MustParse("enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF")
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	log.Info("calling ERP.net", "token", tok)

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
	// A local ERP.net-shaped server and a PAT for the demo user alice; against a real
	// instance use reftoken.FromEnv("ERPNET_TOKEN") and its root URL.
	srv, err := devserver.Start(devserver.Demo())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	raw, _ := srv.IssueReferenceToken(devserver.RefTokenRequest{Kind: devserver.PAT, Subject: "alice", Scopes: []string{"read"}})
	tok, _ := reftoken.Parse(raw)

	client, err := tok.Client(srv.URL(), reftoken.APIKey)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet,
		srv.URL()+"/api/domain/odata/Crm_Sales_Customers?$top=10", nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("X-Erpnet-Caller"), reftoken.CheckResponse(resp))

	// Revoked: the server answers 401 and CheckResponse says why, without the token.
	srv.RevokeReferenceToken(raw)
	resp, err = client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	err = reftoken.CheckResponse(resp)
	var re *reftoken.ResponseError
	fmt.Println(errors.Is(err, reftoken.ErrTokenRejected), errors.As(err, &re) && re.Code == "invalid_token")
	// Output:
	// 200 OK pat:alice <nil>
	// true true
}

func ExampleToken_Transport() {
	tok := reftoken.MustParse("enrt_0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF")
	client := &http.Client{
		Transport: tok.Transport(nil, reftoken.Bearer, reftoken.WithInstance("https://demodb.my.erp.net")),
	}
	// The token is bound to its instance: a request elsewhere is refused before it is sent.
	_, err := client.Get("https://example.com/")
	fmt.Println(errors.Is(err, reftoken.ErrForeignHost))
	// Output: true
}

func ExampleCheckResponse() {
	resp := &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{
		"Www-Authenticate": {`Bearer realm="ERP.net", error="insufficient_scope", error_description="the token lacks scope read"`},
	}}
	err := reftoken.CheckResponse(resp)
	fmt.Println(errors.Is(err, reftoken.ErrNotPermitted))
	fmt.Println(err)
	// Output:
	// true
	// reftoken: HTTP 403 Forbidden: insufficient_scope (the token lacks scope read) [not permitted]
}
