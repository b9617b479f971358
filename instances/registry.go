package instances

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/internal/config"
	"github.com/erpnetgo/auth/internal/keylock"
	"github.com/erpnetgo/auth/internal/peek"
	"github.com/erpnetgo/auth/internal/seal"
)

// Registry serves many ERP.net instances with one Trusted Application
// registration per instance (the same client_id and redirect URI, a
// different secret each): sign-ins at any of them through one callback and
// one cookie, service tokens per instance, and instances added and removed
// at run time, by the application (Add, Remove) or by the ERP.net
// Marketplace's lifecycle events. Create it with New; it is safe for
// concurrent use. Close it when done.
//
// Each instance gets its own authcode.Client (built on its first sign-in
// or session) and its own clientcreds.Source (built on its first Service
// call): tokens, sessions, refresh locks and keys never cross instances,
// and an instance nobody uses costs no request and no goroutine.
type Registry struct {
	cfg     Config
	tpl     *authcode.Client // renders the registry's own pages; never contacts anything
	keys    [][]byte
	sealer  *seal.Sealer
	secrets SecretStore
	locker  authcode.RefreshLocker // Config.Store's, if it is one
	locks   keylock.Map            // per root: record changes and loads
	log     *slog.Logger
	now     func() time.Time
	market  *market

	mu      sync.RWMutex
	byRoot  map[string]*instance
	byTag   map[string]*instance
	unknown map[string]int64 // roots found unknown → until (unix nanoseconds)
	closed  bool

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

// recheck is how long a process uses an instance's record before it reads
// it again from the SecretStore (and so how long a change made by another
// replica takes to arrive); unknown roots are remembered as long.
const recheck = time.Minute

// maxUnknown bounds the roots remembered as unknown.
const maxUnknown = 4096

// templateAuthority is the Authority of the Client that renders the
// registry's own pages: it is never contacted.
const templateAuthority = "https://instances.invalid"

func init() {
	peek.RegistryClient = func(reg any) any { return reg.(*Registry).tpl }
}

// New validates cfg and returns a Registry. It does no network I/O and
// reads no instance: each is read from Secrets when first used.
func New(cfg Config) (*Registry, error) {
	cfg.Scopes = append([]string(nil), cfg.Scopes...)
	cfg.ServiceScopes = append([]string(nil), cfg.ServiceScopes...)
	g := &Registry{cfg: cfg, log: cfg.Logger, now: cfg.Now, secrets: cfg.Secrets,
		byRoot: map[string]*instance{}, byTag: map[string]*instance{}, unknown: map[string]int64{}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if cfg.MarketplaceURL == "" {
		cfg.MarketplaceURL = defaultMarketplaceURL
	}
	mu, err := normalizeRoot(cfg.MarketplaceURL)
	if err != nil {
		return nil, &auth.ConfigError{Field: "MarketplaceURL", Reason: "must be an https URL (http only on loopback hosts) without query or fragment"}
	}
	if err := config.Scopes("ServiceScopes", cfg.ServiceScopes); err != nil {
		return nil, err
	}
	g.keys = cfg.Keys
	if len(g.keys) == 0 {
		if cfg.Secrets != nil {
			return nil, &auth.ConfigError{Field: "Keys", Reason: "are required with Secrets: the secrets are sealed with them and must open after a restart and on every replica"}
		}
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		g.keys = [][]byte{k}
		g.log.Warn("instances: no Keys configured; using a random key for this process: sessions and instances do not survive a restart or span replicas")
	}
	if g.secrets == nil {
		g.secrets = new(memorySecrets)
	}
	if l, ok := cfg.Store.(authcode.RefreshLocker); ok {
		g.locker = l
	}
	g.cfg = cfg
	// The template validates every field the instances' Clients share,
	// with authcode's rules and field names.
	tc := g.clientConfig(templateAuthority, "", nil)
	if h := cfg.Hooks; h != nil && h.Event != nil {
		// What the template reports (a BFF's refusals, before any instance
		// is known) is about no instance: no made-up Authority.
		tc.Hooks = &auth.Hooks{Call: h.Call, IncludeUser: h.IncludeUser,
			Event: func(ctx context.Context, e auth.Event) { e.Authority = ""; h.Event(ctx, e) }}
	}
	if g.tpl, err = authcode.New(tc); err != nil {
		return nil, err
	}
	if g.sealer, err = seal.New(g.keys...); err != nil {
		return nil, &auth.ConfigError{Field: "Keys", Reason: "are not valid AES keys"}
	}
	g.market = newMarket(mu, cfg.HTTPClient, cfg.Retry, g.now)
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g, nil
}

// clientConfig is the authcode configuration of one instance.
func (g *Registry) clientConfig(root, secret string, store authcode.Store) authcode.Config {
	c := g.cfg
	return authcode.Config{
		Authority: root, ClientID: c.ClientID, ClientSecret: secret,
		RedirectURL: c.RedirectURL, PostLogoutRedirectURL: c.PostLogoutRedirectURL, Scopes: c.Scopes,
		Store: store, SessionTTL: c.SessionTTL, Keys: g.keys, CookieName: c.CookieName,
		SignInPath: c.SignInPath, DefaultReturnPath: c.DefaultReturnPath, ErrorHandler: c.ErrorHandler,
		LogUsers: c.LogUsers, HTTPClient: c.HTTPClient, Transport: c.Transport, Retry: c.Retry,
		Logger: c.Logger, Hooks: c.Hooks, Now: c.Now,
	}
}

// Close closes every instance's clients (ending their requests and
// background refreshes) and waits for the registry's own work to end.
// Sessions and records stay in their stores. Using the Registry after
// Close returns auth.ErrClosed.
func (g *Registry) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	all := make([]*instance, 0, len(g.byRoot))
	for _, in := range g.byRoot {
		all = append(all, in)
	}
	g.byRoot, g.byTag = map[string]*instance{}, map[string]*instance{}
	g.mu.Unlock()
	g.cancel()
	for _, in := range all {
		in.close(g.ctx, false)
	}
	g.bg.Wait()
	return g.tpl.Close()
}

// goBackground runs f in a goroutine Close waits for, unless the Registry
// is closed. f must end soon after g.ctx does.
func (g *Registry) goBackground(f func()) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return
	}
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		f()
	}()
}

// record is what the SecretStore holds for an instance, sealed.
type record struct {
	Format  int       `json:"f"`
	Root    string    `json:"root"`
	Removed bool      `json:"removed,omitempty"`
	Secret  string    `json:"secret,omitempty"`
	Epoch   string    `json:"epoch,omitempty"` // namespaces the instance's sessions
	EventID string    `json:"eid,omitempty"`   // the last Marketplace event applied
	At      time.Time `json:"at"`              // when the last change happened
	Done    bool      `json:"done,omitempty"`  // OnEvent accepted EventID
}

const recordFormat = 1

// String never shows the secret.
func (r *record) String() string { return "instances.record{root: " + r.Root + "}" }

// GoString is String.
func (r *record) GoString() string { return r.String() }

func recordAAD(root string) []byte { return []byte("erpnetgo/instances record\x00" + root) }

// readRecord returns root's record, nil when there is none.
func (g *Registry) readRecord(ctx context.Context, root string) (*record, error) {
	b, err := g.secrets.Load(ctx, root)
	if err != nil {
		return nil, &auth.Error{Op: "instance record load", Kind: auth.ErrTemporary, Err: err}
	}
	if len(b) == 0 {
		return nil, nil
	}
	pt, err := g.sealer.Open(b, recordAAD(root))
	if err != nil {
		return nil, &auth.Error{Op: "instance record load", Kind: auth.ErrMisconfigured,
			Err: errors.New("the instance's record cannot be opened (sealed with a key that is not in Keys, or not this instance's)")}
	}
	rec := new(record)
	if err := json.Unmarshal(pt, rec); err != nil || rec.Format != recordFormat || rec.Root != root {
		return nil, &auth.Error{Op: "instance record load", Kind: auth.ErrMisconfigured, Err: errors.New("the instance's record is malformed")}
	}
	return rec, nil
}

func (g *Registry) writeRecord(ctx context.Context, rec *record) error {
	pt, err := json.Marshal(rec)
	if err == nil {
		err = g.secrets.Save(ctx, rec.Root, g.sealer.Seal(pt, recordAAD(rec.Root)))
	}
	if err != nil {
		return &auth.Error{Op: "instance record save", Kind: auth.ErrTemporary, Err: err}
	}
	return nil
}

// lockRoot takes root's lock in this process and, with shared set and a
// Store that is a RefreshLocker, across processes too: changes of a
// record (read, decide, write) run one at a time.
func (g *Registry) lockRoot(ctx context.Context, root string, shared bool) (func(), error) {
	unlock, err := g.locks.Lock(ctx, root)
	if err != nil {
		return nil, &auth.Error{Op: "instance lock", Err: err}
	}
	if !shared || g.locker == nil {
		return unlock, nil
	}
	unlock2, err := g.locker.LockRefresh(ctx, "erpnetgo/instances/v1/lock/"+url.PathEscape(root))
	if err != nil {
		unlock()
		return nil, &auth.Error{Op: "instance lock", Kind: auth.ErrTemporary, Err: err}
	}
	return func() { unlock2(); unlock() }, nil
}

func newEpoch() string { return strings.ToLower(rand.Text()) }

// Add adds the instance at root (its root URL, e.g.
// https://acme.my.erp.net, as Authority elsewhere) with its Trusted
// Application's client secret, or gives a known instance a new secret; the
// next request for it is served. An empty secret adds a public client:
// users sign in, but Service has no System User to act as. The record is
// written to Config.Secrets; other replicas read it within a minute. An
// instance removed earlier comes back with none of its old sessions.
func (g *Registry) Add(ctx context.Context, root, secret string) error {
	root, err := normalizeRoot(root)
	if err != nil {
		return err
	}
	if err := config.ClientSecret("secret", secret, false, ""); err != nil {
		return err
	}
	unlock, err := g.lockRoot(ctx, root, true)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := g.readRecord(ctx, root)
	if err != nil {
		return err
	}
	rec := &record{Format: recordFormat, Root: root, Secret: secret, At: g.now().UTC(), Done: true}
	g.keepOrder(rec, cur)
	if cur != nil && !cur.Removed {
		rec.Epoch = cur.Epoch
	} else {
		rec.Epoch = newEpoch()
	}
	if err := g.writeRecord(ctx, rec); err != nil {
		return err
	}
	_, err = g.install(root, rec)
	return err
}

// keepOrder makes a change the application makes (Add, Remove) newer than
// every Marketplace event applied before it, so that no replay or late
// delivery of one undoes it.
func (g *Registry) keepOrder(rec, cur *record) {
	if cur != nil {
		rec.EventID = cur.EventID
		if cur.At.After(rec.At) {
			rec.At = cur.At
		}
	}
}

// Remove removes the instance at root: its clients are closed (their
// requests in flight end), its sessions are deleted from the Store (every
// one this process wrote; any other is never found again, and expires),
// and nothing is sent to the instance any more: Service, SignIn and
// RequireUser treat it as unknown, and Sources and Sessions obtained
// before fail with auth.ErrClosed. Other replicas stop serving it within a
// minute. Removing an unknown instance does nothing.
func (g *Registry) Remove(ctx context.Context, root string) error {
	root, err := normalizeRoot(root)
	if err != nil {
		return err
	}
	unlock, err := g.lockRoot(ctx, root, true)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := g.readRecord(ctx, root)
	if err != nil {
		return err
	}
	if cur != nil && !cur.Removed {
		rec := &record{Format: recordFormat, Root: root, Removed: true, At: g.now().UTC(), Done: true}
		g.keepOrder(rec, cur)
		if err := g.writeRecord(ctx, rec); err != nil {
			return err
		}
	}
	return g.drop(ctx, root)
}

// drop stops serving root in this process and purges what it knows of
// the instance's sessions.
func (g *Registry) drop(ctx context.Context, root string) error {
	g.mu.Lock()
	in := g.byRoot[root]
	if in != nil {
		delete(g.byRoot, root)
		delete(g.byTag, in.tag)
	}
	g.markUnknown(root)
	g.mu.Unlock()
	if in == nil {
		return nil
	}
	return in.close(ctx, true)
}

// purgeTimeout bounds the purge of a removed installation's sessions that a
// request finds (a Store that hangs must not hold the request for ever);
// Close ends it at once.
const purgeTimeout = 30 * time.Second

// markUnknown remembers root as unknown for recheck. Called with g.mu held.
func (g *Registry) markUnknown(root string) {
	if len(g.unknown) >= maxUnknown {
		// Full (forged tags, say): make room for one. Clearing it would
		// send every root it held back to the SecretStore at once.
		for k := range g.unknown {
			delete(g.unknown, k)
			break
		}
	}
	g.unknown[root] = g.now().Add(recheck).UnixNano()
}

// install makes rec (just read or written) what this process serves for
// root, and returns the instance, or ErrUnknownInstance for a removed
// one. A new secret closes the instance's clients (new ones are built on
// next use); its sessions stay. Called with root's lock held.
func (g *Registry) install(root string, rec *record) (*instance, error) {
	if rec == nil || rec.Removed {
		ctx, cancel := context.WithTimeout(g.ctx, purgeTimeout)
		defer cancel()
		if err := g.drop(ctx, root); err != nil {
			g.log.Warn("instances: removed instance not fully purged", "root", root, "error", err.Error())
		}
		return nil, ErrUnknownInstance
	}
	now := g.now().UnixNano()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, auth.ErrClosed
	}
	delete(g.unknown, root)
	cur := g.byRoot[root]
	if cur != nil && cur.rec.Secret == rec.Secret && cur.rec.Epoch == rec.Epoch {
		cur.checked.Store(now)
		g.mu.Unlock()
		return cur, nil
	}
	n := g.newInstance(root, rec, cur)
	n.checked.Store(now)
	g.byRoot[root], g.byTag[n.tag] = n, n
	g.mu.Unlock()
	if cur != nil {
		// Removed and added again elsewhere (a new epoch): purge.
		ctx, cancel := context.WithTimeout(g.ctx, purgeTimeout)
		defer cancel()
		if err := cur.close(ctx, cur.rec.Epoch != rec.Epoch); err != nil {
			g.log.Warn("instances: earlier installation not fully purged", "root", root, "error", err.Error())
		}
	}
	return n, nil
}

// lookup returns the instance at root (normalized), reading its record
// when this process has none or read it more than a minute ago.
func (g *Registry) lookup(ctx context.Context, root string) (*instance, error) {
	now := g.now().UnixNano()
	g.mu.RLock()
	in, closed := g.byRoot[root], g.closed
	until, unknown := g.unknown[root]
	g.mu.RUnlock()
	switch {
	case closed:
		return nil, auth.ErrClosed
	case in != nil && now-in.checked.Load() < int64(recheck):
		return in, nil
	case in == nil && unknown && now < until:
		return nil, ErrUnknownInstance
	}
	unlock, err := g.lockRoot(ctx, root, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	g.mu.RLock()
	in = g.byRoot[root]
	g.mu.RUnlock()
	if in != nil && g.now().UnixNano()-in.checked.Load() < int64(recheck) {
		return in, nil // read by another caller meanwhile
	}
	rec, err := g.readRecord(ctx, root)
	if err != nil {
		if in != nil {
			// Keep serving what this process knows; try again soon.
			g.log.Warn("instances: cannot read the instance's record; using the one read earlier", "root", root, "error", err.Error())
			in.checked.Store(g.now().Add(-recheck + recheck/6).UnixNano())
			return in, nil
		}
		return nil, err
	}
	return g.install(root, rec)
}

// lookupTag returns the instance whose tag (in an attempt's state or a
// session cookie) is tag.
func (g *Registry) lookupTag(ctx context.Context, tag string) (*instance, error) {
	g.mu.RLock()
	in := g.byTag[tag]
	g.mu.RUnlock()
	if in != nil && g.now().UnixNano()-in.checked.Load() < int64(recheck) {
		return in, nil
	}
	root, ok := rootOfTag(tag)
	if !ok {
		return nil, ErrUnknownInstance
	}
	return g.lookup(ctx, root)
}

// tagOf is the instance tag of root: in every attempt's state and session
// cookie of the instance, so that any replica finds the instance.
func tagOf(root string) string { return base64.RawURLEncoding.EncodeToString([]byte(root)) }

func rootOfTag(tag string) (string, bool) {
	if len(tag) > base64.RawURLEncoding.EncodedLen(maxRoot) {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(tag)
	if err != nil {
		return "", false
	}
	root, err := normalizeRoot(string(b))
	return root, err == nil && root == string(b)
}

// instance is one ERP.net instance this process serves.
type instance struct {
	g       *Registry
	root    string
	tag     string
	rec     *record // never changed: a new record makes a new instance
	store   authcode.Store
	ns      *nsStore     // Config.Store under the instance's namespace; nil with memory
	checked atomic.Int64 // when rec was last known current (unix nanoseconds)

	web atomic.Pointer[webParts] // built on first use

	mu     sync.Mutex // guards the building and closing below
	src    *clientcreds.Source
	closed bool
}

// webParts is an instance's Client and its handlers.
type webParts struct {
	client                    *authcode.Client
	signIn, callback, signOut http.Handler
}

// newInstance makes the instance for rec; prev (the same root, another
// secret) hands over its session store when its epoch is rec's.
func (g *Registry) newInstance(root string, rec *record, prev *instance) *instance {
	in := &instance{g: g, root: root, tag: tagOf(root), rec: rec}
	switch {
	case prev != nil && prev.rec.Epoch == rec.Epoch:
		in.store, in.ns = prev.store, prev.ns
	case g.cfg.Store != nil:
		in.ns = newNSStore(g.cfg.Store, rec.Epoch, g.now)
		in.store = in.ns.store()
	default:
		in.store = peek.NewMemoryStore(g.cfg.Now).(authcode.Store)
	}
	return in
}

// parts returns the instance's Client and handlers, building them on
// first use.
func (in *instance) parts() (*webParts, error) {
	if p := in.web.Load(); p != nil {
		return p, nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil, auth.ErrClosed
	}
	if p := in.web.Load(); p != nil {
		return p, nil
	}
	c, err := authcode.New(in.g.clientConfig(in.root, in.rec.Secret, in.store))
	if err != nil {
		return nil, err
	}
	peek.Bind(c, in.tag)
	p := &webParts{client: c, signIn: c.SignIn(), callback: c.Callback(), signOut: c.SignOut()}
	in.web.Store(p)
	return p, nil
}

// source returns the instance's service token source, building it on
// first use.
func (in *instance) source() (*clientcreds.Source, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil, auth.ErrClosed
	}
	if in.src != nil {
		return in.src, nil
	}
	if in.rec.Secret == "" {
		return nil, &auth.Error{Op: "service token", Kind: auth.ErrMisconfigured,
			Err: errors.New("the instance was added without a client secret (a public Trusted Application): there is no System User to act as")}
	}
	c := in.g.cfg
	src, err := clientcreds.New(clientcreds.Config{
		Authority: in.root, ClientID: c.ClientID, ClientSecret: in.rec.Secret, Scopes: c.ServiceScopes,
		HTTPClient: c.HTTPClient, Transport: c.Transport, Retry: c.Retry, Logger: c.Logger, Now: c.Now, Hooks: c.Hooks,
	})
	if err != nil {
		return nil, err
	}
	in.src = src
	return src, nil
}

// close closes the instance's clients: requests in flight end, and a
// Source or Session handed out earlier gets auth.ErrClosed instead of
// sending anything. With purge set, the sessions this process wrote are
// deleted too, within ctx.
func (in *instance) close(ctx context.Context, purge bool) error {
	in.mu.Lock()
	in.closed = true
	src, p := in.src, in.web.Load()
	in.mu.Unlock()
	if src != nil {
		src.Invalidate() // a closed Source would still hand out its cached token
		src.Close()
	}
	if p != nil {
		p.client.Close()
	}
	if purge && in.ns != nil {
		return in.ns.purge(ctx)
	}
	return nil
}

// Service returns the service token source of the instance at root: its
// Trusted Application's System User (client credentials), one Source per
// instance per process as ERP.net's license terms require, built on first
// use. Its token is fetched when first asked for and refreshed ahead of
// expiry only while it is being used. Call Service for each piece of work
// rather than keeping the Source: after Remove, or when the instance gets
// a new secret, the old Source is closed. Unknown roots give
// ErrUnknownInstance.
func (g *Registry) Service(ctx context.Context, root string) (*clientcreds.Source, error) {
	root, err := normalizeRoot(root)
	if err != nil {
		return nil, err
	}
	for range 2 {
		in, err := g.lookup(ctx, root)
		if err != nil {
			return nil, err
		}
		src, err := in.source()
		if !errors.Is(err, auth.ErrClosed) {
			return src, err
		}
		// Replaced (a new secret) or removed since the look-up: once more.
	}
	return nil, auth.ErrClosed
}
