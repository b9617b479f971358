// Package oidctest runs the OpenID Certified oidc-provider npm package
// (github.com/panva/node-oidc-provider) as a real OpenID Provider for
// interoperability tests, and drives its sign-in, consent and logout pages
// with plain net/http.
//
// The provider is configured by provider/server.mjs:
//
//   - the issuer is http://127.0.0.1:<random port> (no path) and equals the
//     discovery document's "issuer"; with [Config.ERPNetStyle] the server is
//     laid out as an ERP.net instance instead (see there);
//   - every access token issued by the token endpoint (client_credentials,
//     authorization_code, refresh_token) is an RS256 JWT ("typ": "at+jwt")
//     for the resource server [Provider.Resource], which is both the token's
//     "aud" and the default resource: callers never need to send a
//     "resource" parameter. The resource accepts the scopes "read" and
//     "update", which must also be listed in a client's [Client.Scope] if
//     that is set;
//   - PKCE (S256) is required for every authorization_code client;
//   - refresh tokens are issued only when the authorization request asks for
//     the scope offline_access AND has prompt=consent (without it the
//     provider silently drops offline_access), and the client has the
//     refresh_token grant type. Refresh tokens rotate on every use; presenting
//     a used one fails with invalid_grant and revokes the whole grant, that
//     is every token of that user and client, including those of later
//     [Provider.Login] calls that reused the grant through the session;
//   - [Provider.EndSession] revokes the session's grants except offline_access
//     ones: refresh tokens keep working after logout;
//   - client_secret_basic credentials must be form-urlencoded before base64
//     (RFC 6749 section 2.3.1, as golang.org/x/oauth2 does); a raw secret
//     containing '%' is rejected with invalid_request;
//   - JWT access tokens cannot be used at the userinfo endpoint, nor
//     introspected or revoked (unsupported_token_type); refresh tokens can be
//     introspected and revoked;
//   - the ID token carries the profile and email claims (name,
//     preferred_username, email, email_verified) when those scopes are
//     granted; "sub" is the login name given to [Provider.Login].
//
// Node.js and npm must be on PATH. If provider/node_modules is missing or out
// of date, [Start] runs "npm ci" there first, under a file lock so that test
// binaries of several packages can start providers at the same time.
package oidctest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Client is an OAuth 2.0 client registered with the provider at start-up.
type Client struct {
	// ID is the client_id. It may contain any character, '/' included.
	ID string `json:"client_id"`
	// Secret is the client_secret of a confidential client; leave it empty
	// for public clients (AuthMethod "none").
	Secret string `json:"client_secret,omitempty"`
	// AuthMethod is the token_endpoint_auth_method: "client_secret_basic"
	// (the default when empty), "client_secret_post" or "none".
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// GrantTypes lists the allowed grant types, for example
	// "authorization_code", "refresh_token", "client_credentials". Empty
	// means the provider default, authorization_code only.
	GrantTypes []string `json:"grant_types,omitempty"`
	// RedirectURIs are the registered redirect_uri values.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// PostLogoutRedirectURIs are the registered post_logout_redirect_uri
	// values.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// Scope, if not empty, is the space-separated list of scopes the client
	// may request, among openid, offline_access, profile, email, read and
	// update. Empty allows all of them.
	Scope string `json:"scope,omitempty"`
	// Native registers a native application (application_type "native"):
	// a loopback redirect URI such as http://127.0.0.1/callback then
	// matches on any port (RFC 8252 §7.3).
	Native bool `json:"native,omitempty"`
}

// Config configures a provider started by [Start].
type Config struct {
	// Clients are the registered clients.
	Clients []Client
	// AccessTokenTTL is the lifetime of access tokens, rounded up to whole
	// seconds; 0 keeps the provider defaults (1 h for authorization_code and
	// refresh_token, 10 min for client_credentials).
	AccessTokenTTL time.Duration
	// Users optionally maps login names to passwords. The provider's
	// development sign-in form accepts any login with any password; when
	// Users is not nil, [Provider.Login] refuses names missing from it and
	// types the listed password into the form.
	Users map[string]string
	// ERPNetStyle lays the server out as an ERP.net instance whose root is
	// http://127.0.0.1:<port> ([Provider.Root]): the provider is mounted
	// under /id (the issuer is <root>/id) with IdentityServer's routes
	// /connect/authorize, /connect/token, /connect/endsession,
	// /connect/revocation, /connect/introspect, /connect/userinfo and the
	// JWKS at /.well-known/openid-configuration/jwks; GET
	// <root>/sys/auto-discovery answers ERP.net's JSON naming the ID web site
	// (<root>/id) and the Domain API (ODataServiceRoot
	// <root>/api/domain/odata/, [Provider.DomainAPI]); and that OData root is
	// a stand-in answering 200 {"value":[]} to any request with a Bearer
	// token and 401 without. Nothing is served at the root's
	// /.well-known/openid-configuration.
	ERPNetStyle bool
}

// Provider is a running oidc-provider process. Its methods are safe for
// concurrent use; the interactive flows of [Provider.Login] and
// [Provider.EndSession] run one at a time.
type Provider struct {
	issuer   string
	root     string // the instance root (ERPNetStyle) or the issuer
	origin   string // scheme://host:port
	resource string
	users    map[string]string

	mu          sync.Mutex   // serializes Login and EndSession
	browser     *http.Client // a cookie jar, no redirects followed
	sessionUser string       // user signed in within the browser's jar, "" if none
}

// defaultResource is the resource indicator (and JWT "aud") of access tokens.
const defaultResource = "urn:erpnet:domainapi"

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 5 * time.Second
)

// Start starts oidc-provider with cfg, waits until it listens (at most 30 s)
// and registers a cleanup with tb that stops the process and waits for it to
// exit. The provider's output is logged through tb only if the test failed.
// Without Node.js (node, and npm when the provider is not installed yet) it
// skips tb, or fails it when the environment variable CI is set, as the
// Redis tests do. Start calls tb.Fatal if the provider cannot be installed
// or started.
func Start(tb testing.TB, cfg Config) *Provider {
	tb.Helper()
	dir := providerDir(tb)
	requireTools(tb, dir)
	ensureInstalled(tb, dir)

	conf, err := json.Marshal(serverConfig(cfg))
	if err != nil {
		tb.Fatalf("oidctest: encoding config: %v", err)
	}

	stdin, stdinW, err := os.Pipe()
	if err != nil {
		tb.Fatalf("oidctest: %v", err)
	}
	out := &outputWriter{listening: make(chan string, 1)}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		stdin.Close()
		stdinW.Close()
		tb.Fatalf("oidctest: starting node (is Node.js installed and on PATH?): %v", err)
	}
	stdin.Close() // the child holds its own copy

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Closing stdin is how the server is told to exit; a test binary that
	// dies closes it too.
	stop := func() {
		stdinW.Close()
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	// The config is one JSON line on stdin (the pipe buffer holds it even
	// before node reads it).
	if _, err := stdinW.Write(append(conf, '\n')); err != nil {
		stop()
		tb.Fatalf("oidctest: writing config to node: %v\n%s", err, out.String())
	}

	var issuer string
	select {
	case issuer = <-out.listening:
	case err := <-exited:
		exited <- err
		stop()
		tb.Fatalf("oidctest: oidc-provider exited before listening: %v\n%s", err, out.String())
	case <-time.After(startTimeout):
		stop()
		tb.Fatalf("oidctest: oidc-provider did not print LISTENING within %v\n%s", startTimeout, out.String())
	}

	jar, _ := cookiejar.New(nil)
	root := issuer
	if cfg.ERPNetStyle {
		root = strings.TrimSuffix(issuer, "/id")
	}
	origin := root
	if u, err := url.Parse(issuer); err == nil {
		origin = u.Scheme + "://" + u.Host
	}
	p := &Provider{
		issuer:   issuer,
		root:     root,
		origin:   origin,
		resource: defaultResource,
		users:    cfg.Users,
		browser: &http.Client{Transport: &http.Transport{}, Jar: jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	tb.Cleanup(func() {
		p.browser.CloseIdleConnections()
		stop()
		if tb.Failed() {
			tb.Logf("oidctest: oidc-provider at %s output:\n%s", issuer, out.String())
		}
	})
	return p
}

// Issuer returns the issuer identifier, http://127.0.0.1:<port> (with
// [Config.ERPNetStyle]: http://127.0.0.1:<port>/id), which is also the base
// URL of discovery: Issuer()+"/.well-known/openid-configuration".
func (p *Provider) Issuer() string { return p.issuer }

// Root returns the ERP.net instance root, http://127.0.0.1:<port>, with
// [Config.ERPNetStyle]; otherwise it returns the issuer.
func (p *Provider) Root() string { return p.root }

// DomainAPI returns the ODataServiceRoot that ERP.net auto-discovery names,
// Root()+"/api/domain/odata/", with [Config.ERPNetStyle]; otherwise "".
func (p *Provider) DomainAPI() string {
	if p.root == p.issuer {
		return ""
	}
	return p.root + "/api/domain/odata/"
}

// Resource returns the resource indicator of the resource server for which
// every access token is issued; it is the "aud" claim of the JWT access
// tokens (currently "urn:erpnet:domainapi").
func (p *Provider) Resource() string { return p.resource }

// serverConfig converts cfg to the JSON config read by server.mjs.
func serverConfig(cfg Config) map[string]any {
	return map[string]any{"clients": cfg.Clients, "resource": defaultResource, "erpnet": cfg.ERPNetStyle,
		"accessTokenTTL": int64((cfg.AccessTokenTTL + time.Second - 1) / time.Second)}
}

// outputWriter collects the server's stdout and stderr and reports the
// issuer of the first "LISTENING <url>" line.
type outputWriter struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	listening chan string
	done      bool
}

func (w *outputWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if _, rest, ok := strings.Cut(w.buf.String(), "LISTENING "); ok && !w.done {
		if url, _, ok := strings.Cut(rest, "\n"); ok {
			w.done = true
			w.listening <- strings.TrimSpace(url)
		}
	}
	return len(b), nil
}

func (w *outputWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// providerDir returns the folder holding server.mjs, next to this file.
func providerDir(tb testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("oidctest: cannot locate the oidctest source folder")
	}
	return filepath.Join(filepath.Dir(file), "provider")
}

// requireTools skips tb (fails it when CI is set) unless node, and npm when
// dir's node_modules needs installing, are on PATH.
func requireTools(tb testing.TB, dir string) {
	tb.Helper()
	tools := []string{"node"}
	if !installed(dir) {
		tools = append(tools, "npm")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			msg := "oidctest: " + tool + " not found in PATH; install Node.js with npm (apt-get install -y nodejs npm) to run the interoperability tests"
			if os.Getenv("CI") != "" {
				tb.Fatal(msg + " (CI is set, so this is an error)")
			}
			tb.Skip(msg)
		}
	}
}

// ensureInstalled runs "npm ci" in dir unless node_modules already holds
// the pinned oidc-provider version. An exclusive flock on a lock file in dir
// keeps concurrent test processes from installing at the same time.
func ensureInstalled(tb testing.TB, dir string) {
	tb.Helper()
	if installed(dir) {
		return
	}
	lockPath := filepath.Join(dir, ".npm-install.lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		tb.Fatalf("oidctest: opening %s: %v", lockPath, err)
	}
	defer lock.Close() // also releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		tb.Fatalf("oidctest: locking %s: %v", lockPath, err)
	}
	if installed(dir) { // another process installed it while we waited
		return
	}
	tb.Logf("oidctest: running npm ci in %s", dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	output, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("oidctest: npm ci in %s failed (is npm installed and the npm registry reachable?): %v\n%s", dir, err, output)
	}
	if !installed(dir) {
		tb.Fatalf("oidctest: npm ci in %s did not install the pinned oidc-provider\n%s", dir, output)
	}
}

// installed reports whether node_modules holds the oidc-provider version
// pinned in package.json.
func installed(dir string) bool {
	var want struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	var got struct {
		Version string `json:"version"`
	}
	if readJSON(filepath.Join(dir, "package.json"), &want) != nil ||
		readJSON(filepath.Join(dir, "node_modules", "oidc-provider", "package.json"), &got) != nil {
		return false
	}
	return got.Version != "" && got.Version == want.Dependencies["oidc-provider"]
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
