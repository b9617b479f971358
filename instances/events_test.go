package instances_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/instances"
)

// eventApp is an app receiving Marketplace events, with the events
// OnEvent saw.
type eventApp struct {
	*app
	mp    *erpnettest.Marketplace
	clock *fakeClock
	mu    sync.Mutex
	seen  []instances.Event
	fail  atomic.Bool // OnEvent fails while set
}

func newEventApp(t *testing.T, mcfg ...erpnettest.MarketplaceConfig) *eventApp {
	t.Helper()
	e := &eventApp{mp: erpnettest.NewMarketplace(t, mcfg...), clock: newClock()}
	e.app = newApp(t, instances.Config{
		MarketplaceURL: e.mp.URL(),
		Now:            e.clock.Now,
		OnEvent: func(_ context.Context, ev instances.Event) error {
			if e.fail.Load() {
				return errors.New("provisioning failed")
			}
			e.mu.Lock()
			e.seen = append(e.seen, ev)
			e.mu.Unlock()
			return nil
		},
	})
	return e
}

func (e *eventApp) events() []instances.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]instances.Event(nil), e.seen...)
}

// event is a valid event for in.
func (e *eventApp) event(kind string, in *instance, at time.Time) erpnettest.LifecycleEvent {
	ev := erpnettest.LifecycleEvent{Event: kind, Instance: in.URL(), OccurredAt: at,
		ApplicationURI: clientID, RedirectURI: e.url("/callback")}
	if kind == "installed" {
		ev.ClientSecret = in.secret
	}
	return ev
}

func (e *eventApp) deliver(ev erpnettest.LifecycleEvent) int {
	e.t.Helper()
	st, err := e.mp.Deliver(e.url("/callback"), ev)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *eventApp) post(body []byte) int {
	e.t.Helper()
	resp, err := http.Post(e.url("/callback"), "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signed is ev's body, signed.
func (e *eventApp) signed(ev erpnettest.LifecycleEvent) []byte {
	p := e.mp.Payload(ev)
	return erpnettest.Envelope(p, e.mp.Sign(p))
}

// served reports whether the registry serves in.
func (e *eventApp) served(in *instance) bool {
	_, err := e.reg.Service(context.Background(), in.URL())
	if err != nil && !errors.Is(err, instances.ErrUnknownInstance) {
		e.t.Fatal(err)
	}
	return err == nil
}

// installed adds the instance, which then signs users in and gives
// service tokens; uninstalled removes it.
func TestEventInstallThenUninstall(t *testing.T) {
	e := newEventApp(t)
	A := newInstance(t, "acme")
	t0 := e.clock.Now()
	if st := e.deliver(e.event("installed", A, t0)); st != http.StatusOK {
		t.Fatalf("installed: %d", st)
	}
	if st, iss, _ := e.me(e.signIn(A, erpnettest.Demo.Alice)); st != http.StatusOK || iss != A.Authority() {
		t.Fatalf("sign-in after installed: /me %d %q", st, iss)
	}
	src, err := e.reg.Service(context.Background(), A.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Installed again without a new secret: the instance keeps its secret
	// and its sessions.
	again := e.event("installed", A, t0.Add(30*time.Second))
	again.ClientSecret = ""
	if st := e.deliver(again); st != http.StatusOK {
		t.Fatalf("installed again: %d", st)
	}
	src, err = e.reg.Service(context.Background(), A.URL())
	if err != nil {
		t.Fatal(err)
	}
	src.Invalidate()
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatalf("after installed without a secret: %v", err)
	}
	if st := e.deliver(e.event("uninstalled", A, t0.Add(time.Minute))); st != http.StatusOK {
		t.Fatalf("uninstalled: %d", st)
	}
	if e.served(A) {
		t.Fatal("served after uninstalled")
	}
	evs := e.events()
	if len(evs) != 3 || evs[0].Type != "installed" || evs[2].Type != "uninstalled" || evs[0].Root != A.URL() {
		t.Fatalf("OnEvent saw %+v", evs)
	}
	if !evs[0].OccurredAt.Equal(t0.Truncate(time.Millisecond)) || evs[0].Request.ApplicationURI != clientID {
		t.Fatalf("OnEvent's event: %+v", evs[0])
	}
	// Nothing secret in the logs or in what OnEvent saw.
	if strings.Contains(e.logs.String(), A.secret) || strings.Contains(fmt.Sprintf("%+v", evs), A.secret) {
		t.Fatal("the client secret leaked into the logs or the event")
	}
}

// The Marketplace's key is fetched once for 100 events.
func TestEventKeyFetchedOnce(t *testing.T) {
	e := newEventApp(t)
	ins := []*instance{newInstance(t, "acme"), newInstance(t, "globex")}
	t0 := e.clock.Now()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind := []string{"installed", "uninstalled"}[i/2%2]
			if st := e.deliver(e.event(kind, ins[i%2], t0.Add(time.Duration(i)*time.Second))); st != http.StatusOK {
				t.Errorf("event %d: %d", i, st)
			}
		}()
	}
	wg.Wait()
	if n := e.mp.KeyFetches(); n != 1 {
		t.Fatalf("%d key fetches for 100 events; want 1", n)
	}
}

// Tampered events are refused with 401 (or 400 when not even well formed)
// and store nothing.
func TestEventTampered(t *testing.T) {
	e := newEventApp(t)
	A := newInstance(t, "acme")
	ev := e.event("installed", A, e.clock.Now())
	payload := e.mp.Payload(ev)
	sig := e.mp.Sign(payload)
	other := erpnettest.NewMarketplace(t)
	other.RotateKey()
	flipped := bytes.Replace(payload, []byte(A.secret), []byte("X"+A.secret[1:]), 1)
	reordered := bytes.Replace(payload, []byte(`"event":"installed",`), nil, 1)
	reordered = bytes.Replace(reordered, []byte(`{"eventId"`), []byte(`{"event":"installed","eventId"`), 1)
	badSig := []byte(sig)
	badSig[10] ^= 1
	for name, tc := range map[string]struct {
		body []byte
		want int
	}{
		"flipped payload byte":   {erpnettest.Envelope(flipped, sig), 401},
		"flipped signature byte": {erpnettest.Envelope(payload, string(badSig)), 401},
		"reordered keys":         {erpnettest.Envelope(reordered, sig), 401},
		"wrong key":              {erpnettest.Envelope(payload, other.Sign(payload)), 401},
		"no signature":           {erpnettest.Envelope(payload, ""), 401},
		"signature not base64":   {erpnettest.Envelope(payload, "***"), 401},
		"other schema":           {bytes.Replace(erpnettest.Envelope(payload, sig), []byte("v2"), []byte("v3"), 1), 400},
		"not JSON":               {[]byte("installed"), 400},
		"key given twice":        {bytes.Replace(erpnettest.Envelope(payload, sig), []byte(`{"schema"`), []byte(`{"payload":{},"schema"`), 1), 400},
		"payload not an object":  {erpnettest.Envelope([]byte(`"x"`), sig), 400},
	} {
		if st := e.post(tc.body); st != tc.want {
			t.Errorf("%s: %d; want %d", name, st, tc.want)
		}
	}
	if e.served(A) || len(e.events()) != 0 {
		t.Fatal("a refused event changed something")
	}
	// The untouched event, pretty-printed in transit, still verifies: the
	// signature covers JSON.stringify(payload), not the bytes sent.
	var pretty bytes.Buffer
	pretty.WriteString("{\n  \"signature\": \"" + sig + "\",\n  \"schema\": \"erpnet.appLifecycleEvent.v2\",\n  \"payload\": ")
	pretty.Write(bytes.ReplaceAll(payload, []byte(`,"`), []byte(",\n    \"")))
	pretty.WriteString("\n}")
	if st := e.post(pretty.Bytes()); st != http.StatusOK {
		t.Fatalf("reformatted event: %d; want 200", st)
	}
	if !e.served(A) {
		t.Fatal("not served after a valid event")
	}
}

// Characters JSON.stringify leaves alone but Go's encoder escapes (<, >,
// &, U+2028) verify.
func TestEventJavaScriptEscaping(t *testing.T) {
	e := newEventApp(t)
	A := newInstance(t, "acme")
	ev := e.event("installed", A, e.clock.Now())
	ev.User = "Ann <ann@example.com> & co\u2028"
	payload := e.mp.Payload(ev)
	if !bytes.Contains(payload, []byte("<ann@example.com> & co\u2028")) {
		t.Fatalf("the stand-in does not sign JavaScript's serialization: %s", payload)
	}
	// Passed through a Go service that re-encoded it (<, & and U+2028
	// escaped): the same JSON, so the same JSON.stringify.
	sig := e.mp.Sign(payload)
	goEscaped := strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`, "\u2028", `\u2028`).Replace(string(payload))
	if !strings.Contains(goEscaped, `\u003c`) {
		t.Fatal("test broken: nothing escaped")
	}
	if st := e.post(erpnettest.Envelope([]byte(goEscaped), sig)); st != http.StatusOK {
		t.Fatalf("event with <, &, U+2028 escaped in transit: %d; want 200", st)
	}
	if evs := e.events(); len(evs) != 1 || string(evs[0].User) != `"Ann <ann@example.com> & co`+"\u2028"+`"` {
		t.Fatalf("User = %s", evs[0].User)
	}
}

// A replayed event is acknowledged and changes nothing; an older event
// never overwrites a newer one.
func TestEventReplayAndOrder(t *testing.T) {
	e := newEventApp(t)
	A := newInstance(t, "acme")
	t0 := e.clock.Now()
	install := e.event("installed", A, t0.Add(2*time.Minute))
	body := e.signed(install)
	for i := range 3 {
		if st := e.post(body); st != http.StatusOK {
			t.Fatalf("delivery %d: %d", i, st)
		}
	}
	if n := len(e.events()); n != 1 {
		t.Fatalf("OnEvent saw %d events for 3 deliveries of one; want 1", n)
	}
	// An uninstall that happened before the install arrives late.
	if st := e.deliver(e.event("uninstalled", A, t0.Add(time.Minute))); st != http.StatusOK {
		t.Fatalf("older uninstall: %d; want 200", st)
	}
	if !e.served(A) || len(e.events()) != 1 {
		t.Fatal("an older uninstall removed the instance")
	}
	if st := e.deliver(e.event("uninstalled", A, t0.Add(3*time.Minute))); st != http.StatusOK || e.served(A) {
		t.Fatalf("newer uninstall: %d, served %v", st, e.served(A))
	}
	// The install replayed, and an install older than the uninstall: no effect.
	if st := e.post(body); st != http.StatusOK || e.served(A) {
		t.Fatalf("replayed install after uninstall: %d, served %v", st, e.served(A))
	}
	older := e.event("installed", A, t0.Add(150*time.Second))
	if st := e.deliver(older); st != http.StatusOK || e.served(A) {
		t.Fatalf("older install after uninstall: %d, served %v", st, e.served(A))
	}
	if n := len(e.events()); n != 2 {
		t.Fatalf("OnEvent saw %d events; want 2", n)
	}
	// A manual Add after the uninstall wins over any earlier event.
	if err := e.reg.Add(context.Background(), A.URL(), A.secret); err != nil {
		t.Fatal(err)
	}
	if st := e.deliver(e.event("uninstalled", A, t0.Add(4*time.Minute))); st != http.StatusOK {
		t.Fatal(st)
	}
	if e.served(A) {
		t.Fatal("a newer uninstall after a manual Add did not remove the instance")
	}
}

// An event for another application, or another redirect URI, is refused.
func TestEventForAnotherApp(t *testing.T) {
	e := newEventApp(t)
	A := newInstance(t, "acme")
	for name, mod := range map[string]func(*erpnettest.LifecycleEvent){
		"other applicationUri": func(ev *erpnettest.LifecycleEvent) { ev.ApplicationURI = "com.other/app" },
		"other redirectUri":    func(ev *erpnettest.LifecycleEvent) { ev.RedirectURI = "https://other.example.com/callback" },
		"unknown event":        func(ev *erpnettest.LifecycleEvent) { ev.Event = "updated" },
		"instance not https":   func(ev *erpnettest.LifecycleEvent) { ev.Instance = "http://acme.example.com" },
		"bad reference token":  func(ev *erpnettest.LifecycleEvent) { ev.ReferenceToken = "not-a-token" },
	} {
		ev := e.event("installed", A, e.clock.Now())
		mod(&ev)
		if st := e.deliver(ev); st != http.StatusBadRequest {
			t.Errorf("%s: %d; want 400", name, st)
		}
	}
	if e.served(A) || len(e.events()) != 0 {
		t.Fatal("a refused event changed something")
	}
	// A reference token is handed to OnEvent, never printed.
	ev := e.event("installed", A, e.clock.Now())
	ev.ReferenceToken = "enrt_" + strings.Repeat("AB12", 16)
	if st := e.deliver(ev); st != http.StatusOK {
		t.Fatal(st)
	}
	got := e.events()[0].ReferenceToken
	if got.RevealSecret() != ev.ReferenceToken || strings.Contains(fmt.Sprint(e.events()), "AB12AB12") {
		t.Fatal("reference token lost or printed")
	}
}

// OnEvent failing answers 500; the Marketplace's next delivery runs it
// again; once it succeeded, deliveries are acknowledged.
func TestEventOnEventFails(t *testing.T) {
	e := newEventApp(t)
	A := newInstance(t, "acme")
	body := e.signed(e.event("installed", A, e.clock.Now()))
	e.fail.Store(true)
	if st := e.post(body); st != http.StatusInternalServerError {
		t.Fatalf("OnEvent failing: %d; want 500", st)
	}
	if !e.served(A) {
		t.Fatal("the instance is not added before OnEvent (OnEvent may need it)")
	}
	e.fail.Store(false)
	for range 2 {
		if st := e.post(body); st != http.StatusOK {
			t.Fatalf("redelivery: %d", st)
		}
	}
	if n := len(e.events()); n != 1 {
		t.Fatalf("OnEvent succeeded %d times; want 1", n)
	}
}

// A rotated key is fetched again, but not sooner than a minute after the
// last fetch.
func TestEventKeyRotation(t *testing.T) {
	e := newEventApp(t)
	A, B := newInstance(t, "acme"), newInstance(t, "globex")
	if st := e.deliver(e.event("installed", A, e.clock.Now())); st != http.StatusOK {
		t.Fatal(st)
	}
	e.mp.RotateKey()
	if st := e.deliver(e.event("installed", B, e.clock.Now())); st != http.StatusUnauthorized {
		t.Fatalf("new key within a minute of the last fetch: %d; want 401", st)
	}
	if n := e.mp.KeyFetches(); n != 1 {
		t.Fatalf("%d key fetches; want 1", n)
	}
	e.clock.Advance(61 * time.Second)
	if st := e.deliver(e.event("installed", B, e.clock.Now())); st != http.StatusOK {
		t.Fatalf("new key after a minute: %d; want 200", st)
	}
	for range 5 { // forged events do not make it fetch again
		if st := e.post(erpnettest.Envelope([]byte(`{"eventId":"x"}`), "AAAA")); st != http.StatusUnauthorized {
			t.Fatal(st)
		}
	}
	if n := e.mp.KeyFetches(); n != 2 {
		t.Fatalf("%d key fetches; want 2", n)
	}
}

// Every published key format works.
func TestEventKeyFormats(t *testing.T) {
	for _, f := range []string{"pkix", "pkcs1", "jwk", "jwks"} {
		t.Run(f, func(t *testing.T) {
			e := newEventApp(t, erpnettest.MarketplaceConfig{KeyFormat: f})
			A := newInstance(t, "acme")
			if st := e.deliver(e.event("installed", A, e.clock.Now())); st != http.StatusOK || !e.served(A) {
				t.Fatalf("%s: %d", f, st)
			}
		})
	}
}

// The key is fetched from the Marketplace's own host only: a well-known
// document naming another host, or a redirect to one, is refused without
// a request there.
func TestEventKeyOnlyFromMarketplaceHost(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	defer other.Close()
	for name, doc := range map[string]func(w http.ResponseWriter, r *http.Request){
		"other host": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"endpoints":{"public_key":%q}}`, other.URL+"/key")
		},
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/key" {
				http.Redirect(w, r, other.URL+"/key", http.StatusFound)
				return
			}
			fmt.Fprint(w, `{"endpoints":{"public_key":"/key"}}`)
		},
	} {
		t.Run(name, func(t *testing.T) {
			mkt := httptest.NewServer(http.HandlerFunc(doc))
			defer mkt.Close()
			mp := erpnettest.NewMarketplace(t)
			a := newApp(t, instances.Config{MarketplaceURL: mkt.URL})
			A := newInstance(t, "acme")
			ev := erpnettest.LifecycleEvent{Event: "installed", Instance: A.URL(), ClientSecret: A.secret,
				ApplicationURI: clientID, RedirectURI: a.url("/callback")}
			st, err := mp.Deliver(a.url("/callback"), ev)
			if err != nil {
				t.Fatal(err)
			}
			if st < 500 {
				t.Fatalf("%s: %d; want a 5xx (the key cannot be had)", name, st)
			}
			if n := elsewhere.Load(); n != 0 {
				t.Fatalf("%d requests went to another host", n)
			}
			mkt.CloseClientConnections()
		})
	}
}

// Methods and content types other than a JSON POST (events) and a GET
// (sign-in callbacks) are refused.
func TestEventRequestShape(t *testing.T) {
	e := newEventApp(t)
	for _, tc := range []struct {
		method, ctype string
		want          int
	}{
		{http.MethodPost, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{http.MethodPut, "application/json", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, e.url("/callback"), strings.NewReader("{}"))
		req.Header.Set("Content-Type", tc.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %s; want %d", tc.method, tc.ctype, resp.Status, tc.want)
		}
	}
	if st := e.post(bytes.Repeat([]byte(" "), 70<<10)); st != http.StatusRequestEntityTooLarge {
		t.Errorf("70 KiB body: %d; want 413", st)
	}
}
