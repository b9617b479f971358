package erpnettest

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
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
func (a *domainAPI) endSession(key string) { a.mu.Lock(); delete(a.sessions, key); a.mu.Unlock() }

// LicensesInUse returns how many ERP.net API sessions are open now, by the server's clock: the
// license slots taken (see Config.LicenseCount).
func (s *Server) LicensesInUse() int {
	now := s.now()
	s.api.mu.Lock()
	defer s.api.mu.Unlock()
	maps.DeleteFunc(s.api.sessions, func(_ string, ss *apiSession) bool { return !ss.alive(now) })
	return len(s.api.sessions)
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
	maps.DeleteFunc(a.sessions, func(_ string, ss *apiSession) bool { return !ss.alive(now) })
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
	scheme, bearer, _ := strings.Cut(strings.TrimSpace(strings.Join(authz, " ")), " ")
	key, bearer := strings.TrimSpace(strings.Join(keys, " ")), strings.TrimSpace(bearer)
	switch {
	case len(authz) > 0 && len(keys) > 0:
		return "", "", http.StatusBadRequest, "invalid_request", "use either Authorization: Bearer or an API key header, not both"
	case len(keys) > 1:
		return "", "", http.StatusBadRequest, "invalid_request", "more than one API key header"
	case len(authz) > 1:
		return "", "", http.StatusBadRequest, "invalid_request", "more than one Authorization header"
	case len(keys) == 1 && !validRefToken(key):
		return "", via, http.StatusUnauthorized, "invalid_token", "an API key must be a reference token (enrt_...)"
	case len(keys) == 1:
		return key, via, 0, "", ""
	case len(authz) == 0:
		return "", "", http.StatusUnauthorized, "", "authentication required"
	case !strings.EqualFold(scheme, "Bearer"):
		return "", "", http.StatusUnauthorized, "", "Bearer authentication required"
	case bearer == "" || strings.ContainsAny(bearer, " \t"):
		return "", "bearer", http.StatusUnauthorized, "invalid_token", "malformed bearer token"
	}
	return bearer, "bearer", 0, "", ""
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
		apiError(sw, http.StatusUnauthorized, "Unauthorized", err.Error(), bearerChallenge("invalid_token", err.Error(), ""))
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
		sw.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, MERGE, DELETE")
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
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, pathOData), "/")
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	var body map[string]any
	if !read && r.Method != http.MethodDelete { // read before taking the lock
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil || json.Unmarshal(raw, &body) != nil || body == nil {
			writeAPIError(w, http.StatusBadRequest, "BadRequest", "the body must be a JSON object of at most 1 MiB")
			return
		}
		for k := range body {
			if strings.HasPrefix(k, "@") || k == "caller" || k == "Id" {
				delete(body, k)
			}
		}
		name, _ := body["Name"].(string)
		if _, has := body["Name"]; (has || r.Method == http.MethodPost) && strings.TrimSpace(name) == "" {
			// ERP.net reports business rule violations as HTTP 500.
			writeAPIError(w, http.StatusInternalServerError, "BusinessRuleViolation", "Name is required.")
			return
		}
	}
	// An entity set ("Set") or an entity ("Set(key)", "Set('key')"); nothing deeper.
	name, key, hasKey := rest, "", false
	if open := strings.IndexByte(rest, '('); open > 0 && strings.HasSuffix(rest, ")") {
		name, key, hasKey = rest[:open], strings.Trim(rest[open+1:len(rest)-1], "'"), true
	}
	s.api.mu.Lock()
	defer s.api.mu.Unlock()
	recs, known := s.api.data[name]
	i := slices.IndexFunc(recs, func(rec map[string]any) bool { return hasKey && rec["Id"] == key })
	ctx := s.DomainAPI() + "$metadata#" + name
	switch {
	case rest == "" && read:
		var sets []map[string]any
		for _, n := range []string{"Crm_Sales_Customers", "General_Contacts"} {
			sets = append(sets, map[string]any{"name": n, "kind": "EntitySet", "url": n})
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": s.DomainAPI() + "$metadata", "value": sets, "caller": caller})
	case rest == "":
		writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the service document is read-only")
	case !known || strings.Contains(rest, "/") || hasKey && key == "":
		writeAPIError(w, http.StatusNotFound, "NotFound", "The requested resource was not found: "+truncate(rest))
	case !read && hasKey == (r.Method == http.MethodPost):
		writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" to an entity set is POST, to an entity PATCH, PUT or DELETE")
	case hasKey && i < 0:
		writeAPIError(w, http.StatusNotFound, "NotFound", "No "+name+" entity with key "+truncate(key)+".")
	case read && hasKey:
		writeJSON(w, http.StatusOK, withCaller(recs[i], ctx+"/$entity", caller))
	case read:
		top, skip, err := pageParams(r)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		page := []map[string]any{}
		for _, rec := range recs[min(skip, len(recs)):] {
			if top >= 0 && len(page) == top {
				break
			}
			page = append(page, rec)
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": ctx, "value": page, "caller": caller})
	case r.Method == http.MethodPost:
		h := strings.ToLower(randomHex(16))
		body["Id"] = h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
		s.api.data[name] = append(recs, body)
		w.Header().Set("Location", s.DomainAPI()+name+"("+body["Id"].(string)+")")
		writeJSON(w, http.StatusCreated, withCaller(body, ctx+"/$entity", caller))
	case r.Method == http.MethodDelete:
		s.api.data[name] = slices.Delete(slices.Clone(recs), i, i+1)
		w.WriteHeader(http.StatusNoContent)
	default: // PATCH, MERGE, PUT
		rec := maps.Clone(recs[i])
		maps.Copy(rec, body)
		recs[i] = rec
		w.WriteHeader(http.StatusNoContent)
	}
}

func truncate(v string) string { return v[:min(len(v), 64)] }

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

// withCaller is a copy of rec with its OData context and the caller.
func withCaller(rec map[string]any, ctx string, caller map[string]any) map[string]any {
	out := maps.Clone(rec)
	out["@odata.context"], out["caller"] = ctx, caller
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
