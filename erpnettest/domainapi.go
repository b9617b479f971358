package erpnettest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpnetgo/auth/internal/erpnetctl"
)

// ERP.net API sessions: one license slot each, idle for 20 minutes at most, a client
// credentials token's for an hour at most.
const (
	sessionIdle   = 20 * time.Minute
	systemSession = time.Hour
	maxAPICalls   = 10000
)

// apiSession is an ERP.net API session.
type apiSession struct {
	id            string
	last, hardEnd time.Time // hardEnd zero: none
}

func (ss *apiSession) alive(now time.Time) bool {
	return now.Before(ss.last.Add(sessionIdle)) && (ss.hardEnd.IsZero() || now.Before(ss.hardEnd))
}

// domainAPI is the Domain API's state: API sessions, the call log and the entities.
type domainAPI struct {
	mu       sync.Mutex
	sessions map[string]*apiSession // by principal.sessionKey
	calls    []erpnetctl.APICall
	data     map[string][]map[string]any
	opened   atomic.Int64 // API sessions opened, ever
}

// endSession ends the API session key, if open.
func (a *domainAPI) endSession(key string) {
	a.mu.Lock()
	delete(a.sessions, key)
	a.mu.Unlock()
}

// LicensesInUse returns how many ERP.net API sessions are open now, by the server's clock: the
// license slots taken (see Config.LicenseCount).
func (s *Server) LicensesInUse() int {
	now := s.now()
	s.api.mu.Lock()
	defer s.api.mu.Unlock()
	n := 0
	for _, ss := range s.api.sessions {
		if ss.alive(now) {
			n++
		}
	}
	return n
}

// touchSession slides the caller's API session or opens one; ok is false when opening one
// would exceed the license count.
func (s *Server) touchSession(p *principal, now time.Time) (id string, opened, ok bool) {
	a := &s.api
	a.mu.Lock()
	defer a.mu.Unlock()
	if ss := a.sessions[p.sessionKey]; ss != nil && ss.alive(now) {
		ss.last = now
		return ss.id, false, true
	}
	if a.sessions == nil {
		a.sessions = map[string]*apiSession{}
	}
	for k, ss := range a.sessions {
		if !ss.alive(now) {
			delete(a.sessions, k)
		}
	}
	if s.cfg.LicenseCount > 0 && len(a.sessions) >= s.cfg.LicenseCount {
		return "", false, false
	}
	ss := &apiSession{id: randomHex(16), last: now}
	if p.hardLimit {
		ss.hardEnd = now.Add(systemSession)
	}
	a.sessions[p.sessionKey] = ss
	a.opened.Add(1)
	s.log.Info("erpnettest: ERP.net API session opened", "kind", p.kind, "subject", p.subject, "session", ss.id)
	return ss.id, true, true
}

// credential finds the one token of a request: Authorization: Bearer, or an API key header
// (X-Api-Key, Api-Key; names case-insensitive). Both at once is an error; status 0 is success.
func credential(r *http.Request) (tok, via string, status int, code, desc string) {
	var keys, authz []string
	for name, vals := range r.Header {
		switch n := strings.ToLower(name); n {
		case "x-api-key", "api-key":
			keys, via = append(keys, vals...), n
		case "authorization":
			authz = append(authz, vals...)
		}
	}
	switch {
	case len(authz) > 0 && len(keys) > 0:
		return "", "", http.StatusBadRequest, "invalid_request", "use either Authorization: Bearer or an API key header, not both"
	case len(keys) > 1:
		return "", "", http.StatusBadRequest, "invalid_request", "more than one API key header"
	case len(authz) > 1:
		return "", "", http.StatusBadRequest, "invalid_request", "more than one Authorization header"
	case len(keys) == 1:
		tok = strings.TrimSpace(keys[0])
		if !validRefToken(tok) {
			return "", via, http.StatusUnauthorized, "invalid_token", "an API key must be a reference token (enrt_...)"
		}
		return tok, via, 0, "", ""
	case len(authz) == 1:
		scheme, rest, _ := strings.Cut(strings.TrimSpace(authz[0]), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", "", http.StatusUnauthorized, "", "Bearer authentication required"
		}
		tok = strings.TrimSpace(rest)
		if tok == "" || strings.ContainsAny(tok, " \t") {
			return "", "bearer", http.StatusUnauthorized, "invalid_token", "malformed bearer token"
		}
		return tok, "bearer", 0, "", ""
	}
	return "", "", http.StatusUnauthorized, "", "authentication required"
}

// apiError answers with the ERP.net error shape {"error":{"code":...,"message":...}}; a
// challenge, when given, goes to WWW-Authenticate.
func apiError(w http.ResponseWriter, status int, code, msg, challenge string) {
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeAPIError(w, status, code, msg)
}

func (s *Server) domainAPI(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	now := s.now()
	call := erpnetctl.APICall{Time: now, Method: r.Method, Path: r.URL.Path}
	defer func() {
		call.Status = sw.status()
		s.api.mu.Lock()
		if s.api.calls = append(s.api.calls, call); len(s.api.calls) > 2*maxAPICalls {
			s.api.calls = slices.Clone(s.api.calls[len(s.api.calls)-maxAPICalls:])
		}
		s.api.mu.Unlock()
	}()
	noStore(sw)
	tok, via, status, code, desc := credential(r)
	call.Via = via
	if status != 0 {
		apiError(sw, status, strings.ReplaceAll(http.StatusText(status), " ", ""), desc, bearerChallenge(code, desc, ""))
		return
	}
	p, err := s.validateToken(tok, now)
	if err != nil {
		desc := err.Error()
		if errors.Is(err, errUnknownToken) {
			desc = "the token is invalid"
		}
		apiError(sw, http.StatusUnauthorized, "Unauthorized", desc, bearerChallenge("invalid_token", desc, ""))
		return
	}
	call.Kind, call.Subject, call.ClientID = p.kind, p.subject, p.clientID
	sw.Header().Set("X-Erpnet-Caller", p.kind+":"+p.subject)
	need := "update"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		need = "read"
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, "MERGE":
	default:
		sw.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE")
		apiError(sw, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed", "")
		return
	}
	if !slices.Contains(p.scopes, need) {
		msg := "the token lacks scope " + need
		apiError(sw, http.StatusForbidden, "Forbidden", msg, bearerChallenge("insufficient_scope", msg, need))
		return
	}
	id, opened, ok := s.touchSession(p, now)
	if !ok {
		s.log.Warn("erpnettest: license count exceeded", "kind", p.kind, "subject", p.subject, "licenses", s.cfg.LicenseCount)
		apiError(sw, http.StatusForbidden, "MaximumLicenseCountExceeded", "The maximum number of concurrent sessions ("+
			strconv.Itoa(s.cfg.LicenseCount)+") for this instance has been reached.", "")
		return
	}
	call.Session, call.NewSession = id, opened
	s.serveOData(sw, r, map[string]any{"kind": p.kind, "subject": p.subject, "client_id": p.clientID})
}

// serveOData serves the entity sets: GET a set (with $top and $skip) or an entity, POST to a
// set, PATCH, MERGE, PUT or DELETE an entity. Every answer names the caller.
func (s *Server) serveOData(w http.ResponseWriter, r *http.Request, caller map[string]any) {
	w.Header().Set("OData-Version", "4.0")
	root := s.DomainAPI()
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, pathOData), "/")
	if rest == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the service document is read-only")
			return
		}
		var sets []map[string]any
		for _, name := range []string{"Crm_Sales_Customers", "General_Contacts"} {
			sets = append(sets, map[string]any{"name": name, "kind": "EntitySet", "url": name})
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": root + "$metadata", "value": sets, "caller": caller})
		return
	}
	name, key, hasKey, ok := parseEntityPath(rest)
	s.api.mu.Lock()
	_, known := s.api.data[name]
	s.api.mu.Unlock()
	if !ok || !known {
		writeAPIError(w, http.StatusNotFound, "NotFound", "The requested resource was not found: "+truncate(rest))
		return
	}
	ctx := root + "$metadata#" + name
	notFound := func() {
		writeAPIError(w, http.StatusNotFound, "NotFound", "No "+name+" entity with key "+truncate(key)+".")
	}
	wrongTarget := func(msg string) bool {
		if hasKey == (r.Method == http.MethodPost) {
			writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", msg)
			return true
		}
		return false
	}
	// each runs f on the entity with the key (its index in the set) under the lock.
	each := func(f func(recs []map[string]any, i int)) (found bool) {
		s.api.mu.Lock()
		defer s.api.mu.Unlock()
		if i := slices.IndexFunc(s.api.data[name], func(rec map[string]any) bool { return rec["Id"] == key }); i >= 0 {
			f(s.api.data[name], i)
			return true
		}
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if hasKey {
			var out map[string]any
			if !each(func(recs []map[string]any, i int) { out = copyRecord(recs[i]) }) {
				notFound()
				return
			}
			out["@odata.context"], out["caller"] = ctx+"/$entity", caller
			writeJSON(w, http.StatusOK, out)
			return
		}
		top, skip, err := pageParams(r)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		page := []map[string]any{}
		s.api.mu.Lock()
		for i := skip; i < len(s.api.data[name]) && (top < 0 || len(page) < top); i++ {
			page = append(page, copyRecord(s.api.data[name][i]))
		}
		s.api.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": ctx, "value": page, "caller": caller})
	case http.MethodPost:
		if wrongTarget("POST to an entity set, not to an entity") {
			return
		}
		rec, ok := readRecord(w, r)
		if !ok {
			return
		}
		if n, _ := rec["Name"].(string); strings.TrimSpace(n) == "" {
			// ERP.net reports business rule violations as HTTP 500.
			writeAPIError(w, http.StatusInternalServerError, "BusinessRuleViolation", "Name is required.")
			return
		}
		h := strings.ToLower(randomHex(16))
		rec["Id"] = h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
		s.api.mu.Lock()
		s.api.data[name] = append(s.api.data[name], rec)
		out := copyRecord(rec)
		s.api.mu.Unlock()
		out["@odata.context"], out["caller"] = ctx+"/$entity", caller
		w.Header().Set("Location", root+name+"("+out["Id"].(string)+")")
		writeJSON(w, http.StatusCreated, out)
	case http.MethodPatch, "MERGE", http.MethodPut:
		if wrongTarget("update an entity, not an entity set") {
			return
		}
		upd, ok := readRecord(w, r)
		if !ok {
			return
		}
		if v, has := upd["Name"]; has {
			if n, _ := v.(string); strings.TrimSpace(n) == "" {
				writeAPIError(w, http.StatusInternalServerError, "BusinessRuleViolation", "Name is required.")
				return
			}
		}
		delete(upd, "Id")
		if !each(func(recs []map[string]any, i int) {
			for k, v := range upd {
				recs[i][k] = v
			}
		}) {
			notFound()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if wrongTarget("delete an entity, not an entity set") {
			return
		}
		if !each(func(recs []map[string]any, i int) { s.api.data[name] = slices.Delete(slices.Clone(recs), i, i+1) }) {
			notFound()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func truncate(v string) string { return v[:min(len(v), 64)] }

// parseEntityPath splits "Set" or "Set(key)" / "Set('key')"; anything deeper is not supported.
func parseEntityPath(rest string) (name, key string, hasKey, ok bool) {
	open := strings.IndexByte(rest, '(')
	switch {
	case strings.Contains(rest, "/"):
		return "", "", false, false
	case open < 0:
		return rest, "", false, true
	case !strings.HasSuffix(rest, ")") || open == 0:
		return "", "", false, false
	}
	key = strings.TrimSuffix(strings.TrimPrefix(rest[open+1:len(rest)-1], "'"), "'")
	return rest[:open], key, true, key != ""
}

func pageParams(r *http.Request) (top, skip int, err error) {
	q, top := r.URL.Query(), -1
	if v := q.Get("$top"); v != "" {
		if top, err = strconv.Atoi(v); err != nil || top < 0 {
			return 0, 0, errors.New("$top must be a non-negative integer")
		}
	}
	if v := q.Get("$skip"); v != "" {
		if skip, err = strconv.Atoi(v); err != nil || skip < 0 {
			return 0, 0, errors.New("$skip must be a non-negative integer")
		}
	}
	return top, skip, nil
}

// readRecord reads a JSON object body without OData annotations; it answers 400 itself.
func readRecord(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	var rec map[string]any
	msg := "a JSON object body is required"
	if r.Body != nil {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		switch {
		case err != nil:
			msg = "the body is too large or unreadable"
		case json.Unmarshal(body, &rec) != nil || rec == nil:
			msg = "the body must be a JSON object"
		}
	}
	if rec == nil {
		writeAPIError(w, http.StatusBadRequest, "BadRequest", msg)
		return nil, false
	}
	for k := range rec {
		if strings.HasPrefix(k, "@") || k == "caller" {
			delete(rec, k)
		}
	}
	return rec, true
}

func copyRecord(rec map[string]any) map[string]any {
	out := make(map[string]any, len(rec)+2)
	for k, v := range rec {
		out[k] = v
	}
	return out
}

func demoData() map[string][]map[string]any {
	return map[string][]map[string]any{
		"Crm_Sales_Customers": {
			{"Id": "6c2b1f3e-0d51-4b5e-9a51-6f2f5a0c1a01", "Number": "C-0001", "Name": "Acme Manufacturing Ltd", "Active": true, "CreditLimit": 50000.0},
			{"Id": "0a9e3c47-52d1-4f0b-8b6e-2d7c9e1f3b02", "Number": "C-0002", "Name": "Globex Corporation", "Active": true, "CreditLimit": 120000.0},
			{"Id": "f1d2e3c4-b5a6-4978-8a9b-0c1d2e3f4a03", "Number": "C-0003", "Name": "Initech", "Active": false, "CreditLimit": 0.0},
		},
		"General_Contacts": {
			{"Id": "3e7a1c90-8f2b-4d6e-b1a3-5c9d7e2f1a11", "Name": "Jane Doe", "Email": "jane.doe@acme.example", "Phone": "+359 2 000 0001"},
			{"Id": "9b4d2e61-7c3a-4f5e-a8b2-1d6c3e9f7b12", "Name": "John Smith", "Email": "john.smith@globex.example", "Phone": "+359 2 000 0002"},
		},
	}
}
