package redisstore_test

// Cross-process tests: the authcode Client on the Redis store against the
// dev identity server (one-time refresh tokens), with replicas played by
// child processes re-executing this test binary (TestHelperProcess).

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/authcode/redisstore"
	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/internal/erpnetctl"
	"github.com/erpnetgo/auth/internal/redistest"
	"github.com/erpnetgo/auth/internal/testutil"
)

const (
	// accessLifetime is the dev server's access token lifetime. Replicas
	// judge expiry by their own clock, so to make the signed-in token look
	// expired the children run clockOffset ahead; the refreshed token then
	// still has accessLifetime to live for them. (authcode treats a token
	// another replica just refreshed as usable only with more than a minute
	// left, so the lifetime must exceed a minute: see the report.)
	accessLifetime = 2 * time.Minute
	clockOffset    = accessLifetime + 30*time.Second
	cookieName     = "erpnet_session"
)

// world is one dev identity server and one Redis shared by every replica.
type world struct {
	ds        *erpnettest.Server
	redis     *redistest.Server
	sealKey   []byte
	cookieKey []byte
}

func newWorld(t testing.TB, opts ...redistest.Option) *world {
	t.Helper()
	w := &world{redis: redistest.Start(t, opts...), sealKey: key1, cookieKey: key2}
	w.ds = erpnettest.NewServer(t, erpnettest.Config{AccessTokenLifetime: accessLifetime})
	erpnetctl.Of(w.ds).AutoSignIn(erpnettest.Demo.Alice)
	return w
}

// replica is one app instance: its own Store (own Redis pool) and Client.
type replica struct {
	store  *redisstore.Store
	client *authcode.Client
}

func (r *replica) close() {
	_ = r.client.Close()
	_ = r.store.Close()
}

// newReplica builds a replica; offset shifts its clock.
func newReplica(devURL, redisAddr string, sealKey, cookieKey []byte, offset time.Duration, lockTTL time.Duration) (*replica, error) {
	store, err := redisstore.New(redisstore.Config{Addr: redisAddr, Keys: [][]byte{sealKey}, LockTTL: lockTTL})
	if err != nil {
		return nil, err
	}
	cfg := authcode.Config{
		Authority:    devURL,
		ClientID:     erpnettest.Demo.WebAppID,
		ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL:  "http://127.0.0.1:8080/callback",
		Store:        store,
		Keys:         [][]byte{cookieKey},
	}
	if offset != 0 {
		cfg.Now = func() time.Time { return time.Now().Add(offset) }
	}
	client, err := authcode.New(cfg)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	return &replica{store: store, client: client}, nil
}

func (w *world) replica(t testing.TB, offset, lockTTL time.Duration) *replica {
	t.Helper()
	r, err := newReplica(w.ds.URL(), w.redis.Addr(), w.sealKey, w.cookieKey, offset, lockTTL)
	require.NoError(t, err)
	t.Cleanup(r.close)
	return r
}

// signIn runs the browser side of a sign-in through rep's handlers and the
// dev server, and returns the session cookie.
func signIn(t testing.TB, rep *replica) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	rep.client.SignIn().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/signin", nil))
	require.Equal(t, http.StatusFound, rec.Code, rec.Body.String())
	attemptCookies := rec.Result().Cookies()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == "127.0.0.1:8080" {
			return http.ErrUseLastResponse // the app's callback: handled below
		}
		return nil
	}}
	defer browser.CloseIdleConnections()
	resp, err := browser.Get(rec.Header().Get("Location"))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(cb, "http://127.0.0.1:8080/callback"+"?"), "authorize did not redirect to the callback: %d %q", resp.StatusCode, cb)

	req := httptest.NewRequest(http.MethodGet, cb, nil)
	for _, c := range attemptCookies {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	rep.client.Callback().ServeHTTP(rec, req)
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookieName && c.Value != "" {
			return c
		}
	}
	t.Fatal("no session cookie set by the callback")
	return nil
}

// request is one browser request carrying the session cookie.
func request(ctx context.Context, cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/", nil).WithContext(ctx)
	r.Header.Set("Cookie", cookie)
	return r
}

// sessionToken is what a request handler does: load the user's session and
// read their access token.
func sessionToken(ctx context.Context, c *authcode.Client, cookie string) (string, error) {
	sess, err := c.UserSession(request(ctx, cookie))
	if err != nil {
		return "", err
	}
	tok, err := c.TokenSource(ctx, sess).Token()
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:8])
}

// child is a replica process running TestHelperProcess.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *testutil.SyncBuffer
	done   chan struct{}
}

// startChild re-executes the test binary as a replica.
func (w *world) startChild(t *testing.T, mode, cookie string, extra ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(),
		helperEnv+"="+mode,
		"HELPER_DEV_URL="+w.ds.URL(),
		"HELPER_REDIS_ADDR="+w.redis.Addr(),
		"HELPER_SEAL_KEY="+hex.EncodeToString(w.sealKey),
		"HELPER_COOKIE_KEY="+hex.EncodeToString(w.cookieKey),
		"HELPER_COOKIE="+cookie,
		"HELPER_CLOCK_OFFSET="+clockOffset.String(),
	)
	cmd.Env = append(cmd.Env, extra...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

// expect waits for a stdout line starting with prefix and returns the rest.
func (c *child) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.done
				t.Fatalf("child exited before %q; stderr:\n%s", prefix, c.stderr.String())
			}
			if rest, found := strings.CutPrefix(line, prefix); found {
				return rest
			}
		case <-deadline:
			t.Fatalf("child did not say %q within %v; stderr:\n%s", prefix, timeout, c.stderr.String())
		}
	}
}

// childResult is what a "refresh" child reports.
type childResult struct {
	Tokens map[string]int `json:"tokens"` // token hash -> goroutines that got it
	Errors []string       `json:"errors"`
}

// TestHelperProcess is a replica in a child process; it does nothing in a
// normal test run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the multi-process tests")
	}
	err := runHelper(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func runHelper(mode string) error {
	sealKey, err := hex.DecodeString(os.Getenv("HELPER_SEAL_KEY"))
	if err != nil {
		return err
	}
	cookieKey, err := hex.DecodeString(os.Getenv("HELPER_COOKIE_KEY"))
	if err != nil {
		return err
	}
	offset, err := time.ParseDuration(os.Getenv("HELPER_CLOCK_OFFSET"))
	if err != nil {
		return err
	}
	lockTTL, _ := time.ParseDuration(os.Getenv("HELPER_LOCK_TTL"))
	rep, err := newReplica(os.Getenv("HELPER_DEV_URL"), os.Getenv("HELPER_REDIS_ADDR"), sealKey, cookieKey, offset, lockTTL)
	if err != nil {
		return err
	}
	defer rep.close()
	cookie := os.Getenv("HELPER_COOKIE")
	ctx := context.Background()

	// Warm up: discovery, the Redis pool. UserSession alone starts no refresh.
	if _, err := rep.client.UserSession(request(ctx, cookie)); err != nil {
		return fmt.Errorf("warm-up UserSession: %w", err)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}

	switch mode {
	case "refresh":
		n, _ := strconv.Atoi(os.Getenv("HELPER_GOROUTINES"))
		res := childResult{Tokens: map[string]int{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				tok, err := sessionToken(cctx, rep.client, cookie)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.Errors = append(res.Errors, err.Error())
					return
				}
				res.Tokens[tokenHash(tok)]++
			}()
		}
		wg.Wait()
		b, _ := json.Marshal(res)
		fmt.Println("result " + string(b))
	case "refresh-and-hang":
		// Takes the refresh lock and sends the token request; the parent
		// kills this process while the request is delayed.
		_, err := sessionToken(ctx, rep.client, cookie)
		return fmt.Errorf("should have been killed; got %v", err)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}

func TestMultiProcessRefreshRedeemsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	t.Parallel() // waits on Redis and processes: overlaps with the others
	w := newWorld(t)
	parent := w.replica(t, 0, 0)
	ck := signIn(t, parent)
	cookie := ck.Name + "=" + ck.Value
	ctx := context.Background()
	original, err := sessionToken(ctx, parent.client, cookie)
	require.NoError(t, err)
	require.Zero(t, erpnetctl.Of(w.ds).Grants("refresh_token"))

	const procs, goroutines = 4, 50
	children := make([]*child, procs)
	for i := range children {
		children[i] = w.startChild(t, "refresh", cookie, "HELPER_GOROUTINES="+strconv.Itoa(goroutines))
	}
	for _, c := range children {
		c.expect(t, "ready", 30*time.Second)
	}
	// The winner's token request takes a while, so every process is
	// waiting for the lock while it is held.
	w.ds.InjectFault("token", erpnettest.Fault{Latency: 300 * time.Millisecond})
	for _, c := range children { // release them together
		_, err := io.WriteString(c.stdin, "go\n")
		require.NoError(t, err)
	}
	all := map[string]int{}
	for i, c := range children {
		var res childResult
		require.NoError(t, json.Unmarshal([]byte(c.expect(t, "result ", 60*time.Second)), &res))
		assert.Empty(t, res.Errors, "child %d errors", i)
		for h, n := range res.Tokens {
			all[h] += n
		}
	}
	assert.Equal(t, 1, erpnetctl.Of(w.ds).Grants("refresh_token"), "the one-time refresh token was redeemed more than once")
	require.Len(t, all, 1, "goroutines got different access tokens: %v", all)
	for h, n := range all {
		assert.Equal(t, procs*goroutines, n)
		assert.NotEqual(t, tokenHash(original), h, "still the old access token")
	}
	// The session in Redis holds the new token: a fresh replica (no memory
	// of its own) reads it without another refresh.
	fresh := w.replica(t, clockOffset, 0)
	tok, err := sessionToken(ctx, fresh.client, cookie)
	require.NoError(t, err)
	for h := range all {
		assert.Equal(t, h, tokenHash(tok))
	}
	assert.Equal(t, 1, erpnetctl.Of(w.ds).Grants("refresh_token"))
}

func TestLockHolderKilledMidRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	t.Parallel() // waits on Redis and processes: overlaps with the others
	const lockTTL = 2 * time.Second
	w := newWorld(t)
	parent := w.replica(t, 0, lockTTL)
	ck := signIn(t, parent)
	cookie := ck.Name + "=" + ck.Value

	doomed := w.startChild(t, "refresh-and-hang", cookie, "HELPER_LOCK_TTL="+lockTTL.String())
	doomed.expect(t, "ready", 30*time.Second)
	// The doomed replica's token request hangs at the identity server.
	w.ds.InjectFault("token", erpnettest.Fault{Latency: time.Minute})
	_, err := io.WriteString(doomed.stdin, "go\n")
	require.NoError(t, err)

	// Wait until it holds the lock and its request has reached the server,
	// then kill it.
	lockKey := "" // found by scanning: authcode chooses the session key (the lock in its slot)
	require.Eventually(t, func() bool {
		keys, err := w.redis.Do("KEYS", defaultPrefix+"lock:{*")
		if err != nil || keys == "" {
			return false
		}
		lockKey = keys
		return erpnetctl.Of(w.ds).Grants("refresh_token") == 1
	}, 20*time.Second, 5*time.Millisecond)
	// While it lives, its lock outlasts LockTTL (renewed): a slow token
	// request does not let another replica in.
	time.Sleep(lockTTL + 500*time.Millisecond)
	v, err := w.redis.Do("EXISTS", lockKey)
	require.NoError(t, err)
	require.Equal(t, "1", v, "a live holder lost its lock")
	owner, err := w.redis.Do("GET", lockKey)
	require.NoError(t, err)
	require.NoError(t, doomed.cmd.Process.Kill())
	<-doomed.done
	// Nobody renews the dead holder's lock: it is still there, with at most
	// LockTTL to live.
	v, err = w.redis.Do("PTTL", lockKey)
	require.NoError(t, err)
	left, err := strconv.ParseInt(v, 10, 64)
	require.NoError(t, err)
	require.Positive(t, left, "the dead holder's lock is still there")
	assert.LessOrEqual(t, time.Duration(left)*time.Millisecond, lockTTL)

	// Another replica carries on: it waits for the lock to expire, then
	// redeems the (never redeemed) refresh token itself.
	next := w.replica(t, clockOffset, lockTTL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// (Its LockWait, LockTTL+2s, bounds the wait: a lock that did not
	// expire would fail this with a lock timeout.)
	tok, err := sessionToken(ctx, next.client, cookie)
	require.NoError(t, err)
	assert.NotEmpty(t, tok)
	v, err = w.redis.Do("GET", lockKey)
	require.NoError(t, err)
	assert.NotEqual(t, owner, v, "the dead holder's lock is gone")
	assert.Equal(t, 2, erpnetctl.Of(w.ds).Grants("refresh_token"), "one aborted request by the dead replica, one by the next")

	// The user is still signed in everywhere, with the new token.
	tok2, err := sessionToken(ctx, w.replica(t, clockOffset, lockTTL).client, cookie)
	require.NoError(t, err)
	assert.Equal(t, tok, tok2)
}

func TestRedisOutageAndRecovery(t *testing.T) {
	w := newWorld(t, redistest.Persistent())
	// a: the replica that signed the user in and has their tokens in memory.
	a := w.replica(t, 0, 0)
	ck := signIn(t, a)
	cookie := ck.Name + "=" + ck.Value
	ctx := context.Background()
	tokA, err := sessionToken(ctx, a.client, cookie)
	require.NoError(t, err)

	// Background traffic on a throughout.
	var (
		mu       sync.Mutex
		okDuring int
		errs     []error
		phase    = "before"
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			tok, err := sessionToken(ctx, a.client, cookie)
			mu.Lock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", phase, err))
			} else if tok != tokA {
				errs = append(errs, fmt.Errorf("%s: access token changed", phase))
			} else if phase == "during" {
				okDuring++
			}
			mu.Unlock()
		}
	}()

	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	phase = "during"
	mu.Unlock()
	w.redis.Stop()

	// b: another replica, with nothing in memory: it cannot serve the user
	// while Redis is down, and says so with a temporary, typed error (not
	// "signed out").
	b := w.replica(t, 0, 0)
	t0 := time.Now()
	_, err = b.client.UserSession(request(ctx, cookie))
	require.Error(t, err)
	assert.Less(t, time.Since(t0), 5*time.Second)
	assert.ErrorIs(t, err, auth.ErrTemporary)
	assertRedisUnavailable(t, err)
	assert.NotErrorIs(t, err, authcode.ErrNoSession)
	t.Logf("while Redis is down: %v", err)

	// c: a replica whose token has expired cannot refresh (no lock), and
	// does not touch the refresh token.
	c := w.replica(t, clockOffset, 0)
	sessC, err := c.client.UserSession(request(ctx, cookie))
	require.Error(t, err, "c has no copy in memory")
	assert.Nil(t, sessC)
	assert.Zero(t, erpnetctl.Of(w.ds).Grants("refresh_token"))

	time.Sleep(300 * time.Millisecond)
	w.redis.Restart()
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	phase = "after"
	mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	mu.Lock()
	assert.Empty(t, errs, "requests on the replica holding a valid token failed")
	assert.Positive(t, okDuring, "no request ran while Redis was down")
	mu.Unlock()

	// Full recovery, no session lost.
	require.Eventually(t, func() bool {
		tok, err := sessionToken(ctx, b.client, cookie)
		return err == nil && tok == tokA
	}, 5*time.Second, 50*time.Millisecond, "the session was lost or Redis did not recover")
	tokC, err := sessionToken(ctx, c.client, cookie)
	require.NoError(t, err, "refresh after recovery")
	assert.NotEqual(t, tokA, tokC)
	assert.Equal(t, 1, erpnetctl.Of(w.ds).Grants("refresh_token"))
}

// refreshDuringOutage signs a user in on one replica (Redis persistent), then
// refreshes the session on replica r, whose clock says the token expired,
// while Redis goes down with the token request in flight; it returns the
// refresh's error. r's lock TTL is a second: the lock taken before the
// outage cannot be released while Redis is down and outlives the restart
// until it expires.
func refreshDuringOutage(t *testing.T) (w *world, cookie string, r *replica, sess *authcode.Session, err error) {
	w = newWorld(t, redistest.Persistent())
	ck := signIn(t, w.replica(t, 0, 0))
	cookie = ck.Name + "=" + ck.Value
	r = w.replica(t, clockOffset, time.Second)
	sess, err = r.client.UserSession(request(context.Background(), cookie))
	require.NoError(t, err)
	w.ds.InjectFault("token", erpnettest.Fault{Latency: 500 * time.Millisecond})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		time.Sleep(200 * time.Millisecond) // while the token request is in flight
		w.redis.Stop()
	}()
	_, err = r.client.TokenSource(context.Background(), sess).Token()
	<-stopped
	return w, cookie, r, sess, err
}

// TestRedisOutageDuringRefresh: Redis goes down after the refresh token was
// redeemed but before the rotated tokens are saved. authcode keeps them in
// memory, reports a temporary error, and saves them first thing once Redis
// is back, so the rotated-away refresh token is never redeemed again.
func TestRedisOutageDuringRefresh(t *testing.T) {
	w, cookie, r, sess, err := refreshDuringOutage(t)
	ctx := context.Background()
	require.Error(t, err)
	t.Logf("refresh while Redis went down: %v", err)
	assert.ErrorIs(t, err, auth.ErrTemporary)
	assertRedisUnavailable(t, err)
	require.Equal(t, 1, erpnetctl.Of(w.ds).Grants("refresh_token"))

	w.redis.Restart()
	var tok string
	require.Eventually(t, func() bool {
		t, err := r.client.TokenSource(ctx, sess).Token()
		if err != nil {
			return false
		}
		tok = t.AccessToken
		return true
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, 1, erpnetctl.Of(w.ds).Grants("refresh_token"), "the rotated refresh token was redeemed again")

	// Another replica sees the saved, refreshed session.
	tok2, err := sessionToken(ctx, w.replica(t, clockOffset, 0).client, cookie)
	require.NoError(t, err)
	assert.Equal(t, tok, tok2)
	assert.Equal(t, 1, erpnetctl.Of(w.ds).Grants("refresh_token"))
}
