package instances

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/config"
	"github.com/erpnetgo/auth/internal/jsjson"
	"github.com/erpnetgo/auth/reftoken"
)

// eventSchema is the schema of the lifecycle events this package reads.
const eventSchema = "erpnet.appLifecycleEvent.v2"

// maxEventBody bounds a lifecycle event's body.
const maxEventBody = 64 << 10

// Event is an ERP.net Marketplace lifecycle event, as Config.OnEvent sees
// it once the registry has verified and applied it. The Marketplace posts
// one to the app's redirect URI when the app is installed on an instance
// or uninstalled from it. The client secret it may carry is kept by the
// registry and is not in Event.
type Event struct {
	// ID is the Marketplace's eventId.
	ID string
	// Type is "installed" or "uninstalled".
	Type string
	// OccurredAt is when it happened, by the Marketplace's clock.
	OccurredAt time.Time
	// Root is the instance's root (instanceBaseUrl), as the registry keys
	// it: give it to Service, or compare it with Config.Resolve's.
	Root string
	// User is the payload's "user" (who installed or uninstalled the app)
	// as the Marketplace sent it, in JSON; its shape is not documented.
	// It is personal data.
	User json.RawMessage
	// ReferenceToken is the reference token (enrt_…) the installation
	// issued, when it issued one; zero otherwise. It never prints its
	// value (see package reftoken).
	ReferenceToken reftoken.Token
	// Request echoes the installation link's parameters.
	Request struct {
		ApplicationURI, ClientType, RedirectURI, Impersonate, ServiceAccess, ReferenceTokens, Scope string
	}
}

// eventError is a refused event: status and a code for the answer.
type eventError struct {
	status int
	code   string
	desc   string
	err    error
}

func (e *eventError) Error() string {
	if e.err != nil {
		return e.desc + ": " + e.err.Error()
	}
	return e.desc
}

func badEvent(desc string) *eventError {
	return &eventError{status: http.StatusBadRequest, code: "invalid_event", desc: desc}
}

// serveEvent answers a POST to the callback: a Marketplace lifecycle
// event. 200 when applied, or already applied, or older than what the
// instance's record holds (nothing changes); 400 for a malformed event or
// one for another application; 401 when the signature does not verify;
// 503 when the key or the stores are unavailable (the Marketplace tries
// again); 500 when OnEvent failed.
func (g *Registry) serveEvent(w http.ResponseWriter, r *http.Request) {
	status, err := g.handleEvent(r)
	if err != nil {
		var ee *eventError
		if !errors.As(err, &ee) {
			ee = &eventError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "the event cannot be processed right now", err: err}
			var ae *auth.Error
			if errors.As(err, &ae) && errors.Is(err, auth.ErrMisconfigured) {
				ee.status, ee.code = http.StatusInternalServerError, "server_misconfigured"
			}
		}
		level := g.log.Warn
		if ee.status >= 500 {
			level = g.log.Error
		}
		level("instances: Marketplace event refused", "status", ee.status, "error", ee.Error())
		writeJSON(w, ee.status, map[string]string{"error": ee.code, "error_description": ee.desc})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// handleEvent verifies, reads and applies one event; status is
// "applied", "duplicate" or "stale".
func (g *Registry) handleEvent(r *http.Request) (string, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return "", &eventError{status: http.StatusUnsupportedMediaType, code: "invalid_request", desc: "a lifecycle event is JSON (Content-Type: application/json)"}
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEventBody+1))
	if err != nil {
		return "", badEvent("the body could not be read")
	}
	if len(body) > maxEventBody {
		return "", &eventError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", desc: "the body is larger than 64 KiB"}
	}
	doc, err := jsjson.Parse(body)
	if err != nil || doc.Kind != jsjson.Object {
		return "", badEvent("the body is not a JSON object (or gives a key twice)")
	}
	if s := doc.Get("schema"); s == nil || s.Kind != jsjson.String || s.Str != eventSchema {
		return "", badEvent("schema is not " + eventSchema)
	}
	payload, sigv := doc.Get("payload"), doc.Get("signature")
	if payload == nil || payload.Kind != jsjson.Object {
		return "", badEvent("payload is not a JSON object")
	}
	if sigv == nil || sigv.Kind != jsjson.String || sigv.Str == "" {
		return "", &eventError{status: http.StatusUnauthorized, code: "invalid_signature", desc: "the event has no signature"}
	}
	sig, ok := decodeBase64(sigv.Str)
	if !ok {
		return "", &eventError{status: http.StatusUnauthorized, code: "invalid_signature", desc: "the signature is not base64"}
	}
	// Signed: JSON.stringify(payload), the payload as received in
	// JavaScript's serialization (key order kept).
	if err := g.market.verify(r.Context(), payload.Append(nil), sig); err != nil {
		if errors.Is(err, errBadSignature) {
			return "", &eventError{status: http.StatusUnauthorized, code: "invalid_signature", desc: "the signature does not verify with the Marketplace's public key"}
		}
		return "", err
	}
	ev, secret, err := g.readEvent(payload)
	if err != nil {
		return "", err
	}
	return g.applyEvent(r.Context(), ev, secret)
}

func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// readEvent reads a verified payload's fields and checks that it is for
// this application.
func (g *Registry) readEvent(p *jsjson.Value) (*Event, string, error) {
	str := func(v *jsjson.Value, key string, required bool) (string, error) {
		f := v.Get(key)
		switch {
		case f == nil && !required, f != nil && f.Kind == jsjson.Null && !required:
			return "", nil
		case f == nil || f.Kind != jsjson.String || (required && f.Str == ""):
			return "", badEvent(key + " is missing or not a string")
		case len(f.Str) > 4096 || strings.ContainsFunc(f.Str, config.IsCtl):
			return "", badEvent(key + " is too long or contains control characters")
		}
		return f.Str, nil
	}
	ev := new(Event)
	var err error
	if ev.ID, err = str(p, "eventId", true); err != nil {
		return nil, "", err
	}
	if ev.Type, err = str(p, "event", true); err != nil {
		return nil, "", err
	}
	if ev.Type != "installed" && ev.Type != "uninstalled" {
		return nil, "", badEvent(`event is neither "installed" nor "uninstalled"`)
	}
	switch at := p.Get("occurredAt"); {
	case at != nil && at.Kind == jsjson.String:
		if ev.OccurredAt, err = time.Parse(time.RFC3339Nano, at.Str); err != nil {
			return nil, "", badEvent("occurredAt is not an RFC 3339 time")
		}
	case at != nil && at.Kind == jsjson.Number && at.Num > 0 && at.Num < 1e15:
		ev.OccurredAt = time.UnixMilli(int64(at.Num))
	default:
		return nil, "", badEvent("occurredAt is missing")
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	base, err := str(p, "instanceBaseUrl", true)
	if err != nil {
		return nil, "", err
	}
	if ev.Root, err = normalizeRoot(base); err != nil {
		return nil, "", badEvent("instanceBaseUrl is not an https URL")
	}
	if u := p.Get("user"); u != nil {
		ev.User = u.Append(nil)
	}
	secret, err := str(p, "clientSecret", false)
	if err != nil {
		return nil, "", err
	}
	rt, err := str(p, "referenceToken", false)
	if err != nil {
		return nil, "", err
	}
	if rt != "" {
		if ev.ReferenceToken, err = reftoken.Parse(rt); err != nil {
			return nil, "", badEvent("referenceToken is not a reference token")
		}
	}
	req := p.Get("request")
	if req == nil || req.Kind != jsjson.Object {
		return nil, "", badEvent("request is missing")
	}
	rq := &ev.Request
	for _, f := range []struct {
		key      string
		to       *string
		required bool
	}{
		{"applicationUri", &rq.ApplicationURI, true}, {"redirectUri", &rq.RedirectURI, true},
		{"clientType", &rq.ClientType, false}, {"impersonate", &rq.Impersonate, false},
		{"serviceAccess", &rq.ServiceAccess, false}, {"referenceTokens", &rq.ReferenceTokens, false},
		{"scope", &rq.Scope, false},
	} {
		if *f.to, err = str(req, f.key, f.required); err != nil {
			return nil, "", badEvent("request." + f.key + " is missing or not a string")
		}
	}
	if rq.ApplicationURI != g.cfg.ClientID {
		return nil, "", badEvent("request.applicationUri is not this application's ClientID")
	}
	if rq.RedirectURI != g.cfg.RedirectURL {
		return nil, "", badEvent("request.redirectUri is not this application's RedirectURL")
	}
	return ev, secret, nil
}

// newer reports whether ev comes after the change rec records.
func newer(ev *Event, rec *record) bool {
	return ev.OccurredAt.After(rec.At) || ev.OccurredAt.Equal(rec.At) && ev.ID > rec.EventID
}

// applyEvent applies ev to its instance's record, unless the record shows
// it (or a later change) already, then tells OnEvent.
func (g *Registry) applyEvent(ctx context.Context, ev *Event, secret string) (string, error) {
	unlock, err := g.lockRoot(ctx, ev.Root, true)
	if err != nil {
		return "", err
	}
	cur, err := g.readRecord(ctx, ev.Root)
	if err != nil {
		unlock()
		return "", err
	}
	var rec *record
	switch {
	case cur != nil && cur.EventID == ev.ID && cur.Done:
		unlock()
		return "duplicate", nil
	case cur != nil && cur.EventID == ev.ID:
		rec = cur // applied; OnEvent failed: tell it again
	case cur != nil && !newer(ev, cur):
		unlock()
		g.log.Info("instances: Marketplace event older than the instance's last change; ignored", "event", ev.Type, "event_id", ev.ID, "root", ev.Root)
		return "stale", nil
	default:
		rec = &record{Format: recordFormat, Root: ev.Root, EventID: ev.ID, At: ev.OccurredAt, Done: g.cfg.OnEvent == nil}
		if ev.Type == "installed" {
			rec.Secret, rec.Epoch = secret, newEpoch()
			if cur != nil && !cur.Removed {
				// Installed again: the sessions stay, and without a new
				// secret (requestSecret=false) so does the old one.
				rec.Epoch = cur.Epoch
				if secret == "" {
					rec.Secret = cur.Secret
				}
			}
		} else {
			rec.Removed = true
		}
		if err := g.writeRecord(ctx, rec); err != nil {
			unlock()
			return "", err
		}
		if _, err := g.install(ev.Root, rec); err != nil && !errors.Is(err, ErrUnknownInstance) {
			g.log.Warn("instances: Marketplace event saved but not applied in this process", "root", ev.Root, "error", err.Error())
		}
		g.log.Info("instances: Marketplace event applied", "event", ev.Type, "event_id", ev.ID, "root", ev.Root)
	}
	unlock()
	if rec.Done {
		return "applied", nil
	}
	if err := g.cfg.OnEvent(ctx, *ev); err != nil {
		return "", &eventError{status: http.StatusInternalServerError, code: "event_not_processed",
			desc: "the application could not process the event; it will see it again when the Marketplace delivers it again", err: err}
	}
	// Mark it done, unless another change came meanwhile.
	unlock, err = g.lockRoot(ctx, ev.Root, true)
	if err != nil {
		return "applied", nil
	}
	defer unlock()
	if cur, err := g.readRecord(ctx, ev.Root); err == nil && cur != nil && cur.EventID == ev.ID && !cur.Done {
		done := *cur
		done.Done = true
		if err := g.writeRecord(ctx, &done); err != nil {
			g.log.Warn("instances: cannot record that OnEvent processed the event; it may see it again", "error", err.Error())
		}
	}
	return "applied", nil
}
