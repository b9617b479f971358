package devserver

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APICall records one Domain API request.
type APICall struct {
	// Time is the server-clock time of the request.
	Time time.Time
	// Method is the HTTP method.
	Method string
	// Path is the URL path (no query).
	Path string
	// Kind is the caller kind: "user", "system", "pat", "sat" ("" when unauthenticated).
	Kind string
	// Subject is the user name or System User the caller acts as.
	Subject string
	// ClientID is the Trusted Application behind the token ("" for a PAT without one).
	ClientID string
	// Via is how the token came: "bearer", "x-api-key" or "api-key" ("" when none).
	Via string
	// Status is the HTTP status answered.
	Status int
	// Session is the id of the ERP.net session the request ran in ("" when none).
	Session string
	// NewSession reports that this request opened the session.
	NewSession bool
}

// maxAPICalls bounds the APICalls log.
const maxAPICalls = 10000

// apiSession is an ERP.net session (one license slot).
type apiSession struct {
	id      string
	key     string
	opened  time.Time
	last    time.Time
	hardEnd time.Time // zero: none
}

func (ss *apiSession) alive(now time.Time) bool {
	if !now.Before(ss.last.Add(sessionIdleTimeout)) {
		return false
	}
	return ss.hardEnd.IsZero() || now.Before(ss.hardEnd)
}

// APICalls returns a copy of the Domain API call log (at most the last 10000 calls).
func (s *Server) APICalls() []APICall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]APICall(nil), s.apiCalls...)
}

// ResetAPICalls clears the Domain API call log.
func (s *Server) ResetAPICalls() {
	s.mu.Lock()
	s.apiCalls = nil
	s.mu.Unlock()
}

// OpenSessions returns how many ERP.net sessions are open now (by the server clock).
func (s *Server) OpenSessions() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ss := range s.sessions {
		if ss.alive(now) {
			n++
		}
	}
	return n
}

// SessionsOpened returns how many ERP.net sessions the Domain API has opened since the server
// started (each takes a license slot while open). Unlike APICalls it is never trimmed or reset.
func (s *Server) SessionsOpened() int { return int(s.sessionsOpened.Load()) }

// touchSession slides the caller's session or opens one; ok is false when opening one would
// exceed LicenseCount.
func (s *Server) touchSession(p *principal, now time.Time) (id string, opened, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[p.sessionKey]; ss != nil && ss.alive(now) {
		ss.last = now
		return ss.id, false, true
	}
	delete(s.sessions, p.sessionKey)
	if s.cfg.LicenseCount > 0 {
		open := 0
		for k, ss := range s.sessions {
			if ss.alive(now) {
				open++
			} else {
				delete(s.sessions, k)
			}
		}
		if open >= s.cfg.LicenseCount {
			return "", false, false
		}
	}
	ss := &apiSession{id: randomHex(16), key: p.sessionKey, opened: now, last: now}
	if p.hardLimit {
		ss.hardEnd = now.Add(systemSessionMaxAge)
	}
	s.sessions[p.sessionKey] = ss
	s.sessionsOpened.Add(1)
	s.log.Info("devserver: ERP.net session opened", "kind", p.kind, "subject", p.subject, "session", ss.id)
	return ss.id, true, true
}

type credError struct {
	status int
	code   string // RFC 6750 error attribute; "" for a missing credential
	desc   string
}

// extractCredential finds the one token of a request: Authorization: Bearer, or an API key
// header (X-Api-Key, Api-Key; names case-insensitive). Both at once is an error.
func extractCredential(r *http.Request) (tok, via string, cerr *credError) {
	var keys []string
	var keyVia string
	var authz []string
	for name, vals := range r.Header {
		switch strings.ToLower(name) {
		case "x-api-key":
			keys = append(keys, vals...)
			keyVia = "x-api-key"
		case "api-key":
			keys = append(keys, vals...)
			keyVia = "api-key"
		case "authorization":
			authz = append(authz, vals...)
		}
	}
	switch {
	case len(authz) > 0 && len(keys) > 0:
		return "", "", &credError{http.StatusBadRequest, "invalid_request", "use either Authorization: Bearer or an API key header, not both"}
	case len(keys) > 1:
		return "", "", &credError{http.StatusBadRequest, "invalid_request", "more than one API key header"}
	case len(authz) > 1:
		return "", "", &credError{http.StatusBadRequest, "invalid_request", "more than one Authorization header"}
	case len(keys) == 1:
		tok = strings.TrimSpace(keys[0])
		if !validRefTokenFormat(tok) {
			return "", keyVia, &credError{http.StatusUnauthorized, "invalid_token", "an API key must be a reference token (enrt_...)"}
		}
		return tok, keyVia, nil
	case len(authz) == 1:
		scheme, rest, _ := strings.Cut(strings.TrimSpace(authz[0]), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", "", &credError{http.StatusUnauthorized, "", "Bearer authentication required"}
		}
		tok = strings.TrimSpace(rest)
		if tok == "" || strings.ContainsAny(tok, " \t") {
			return "", "bearer", &credError{http.StatusUnauthorized, "invalid_token", "malformed bearer token"}
		}
		return tok, "bearer", nil
	default:
		return "", "", &credError{http.StatusUnauthorized, "", "authentication required"}
	}
}

// bearerChallenge builds a WWW-Authenticate value (RFC 6750 §3).
func bearerChallenge(code, desc, scope string) string {
	v := `Bearer realm="ERP.net"`
	if code != "" {
		v += `, error="` + code + `"`
		if desc != "" {
			v += `, error_description="` + strings.ReplaceAll(desc, `"`, `'`) + `"`
		}
	}
	if scope != "" {
		v += `, scope="` + scope + `"`
	}
	return v
}

func (s *Server) handleDomainAPI(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	w = sw
	now := s.now()
	call := APICall{Time: now, Method: r.Method, Path: r.URL.Path}
	defer func() {
		call.Status = sw.status()
		s.mu.Lock()
		s.apiCalls = append(s.apiCalls, call)
		if len(s.apiCalls) > 2*maxAPICalls {
			s.apiCalls = append([]APICall(nil), s.apiCalls[len(s.apiCalls)-maxAPICalls:]...)
		}
		s.mu.Unlock()
	}()
	noStore(w)

	tok, via, cerr := extractCredential(r)
	call.Via = via
	if cerr != nil {
		w.Header().Set("WWW-Authenticate", bearerChallenge(cerr.code, cerr.desc, ""))
		writeAPIError(w, cerr.status, httpCode(cerr.status), cerr.desc)
		return
	}
	p, err := s.validateToken(tok, s.issuer(r), now)
	if err != nil {
		desc := err.Error()
		if errors.Is(err, errUnknownToken) {
			desc = "the token is invalid"
		}
		w.Header().Set("WWW-Authenticate", bearerChallenge("invalid_token", desc, ""))
		writeAPIError(w, http.StatusUnauthorized, "Unauthorized", desc)
		return
	}
	call.Kind, call.Subject, call.ClientID = p.kind, p.subject, p.clientID
	w.Header().Set("X-Erpnet-Caller", p.kind+":"+p.subject)

	var need string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		need = ScopeRead
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, "MERGE":
		need = ScopeUpdate
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE")
		writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
		return
	}
	if !contains(p.scopes, need) {
		w.Header().Set("WWW-Authenticate", bearerChallenge("insufficient_scope", "the token lacks scope "+need, need))
		writeAPIError(w, http.StatusForbidden, "Forbidden", "the token lacks scope "+need)
		return
	}
	id, opened, ok := s.touchSession(p, now)
	if !ok {
		s.log.Warn("devserver: license count exceeded", "kind", p.kind, "subject", p.subject, "licenses", s.cfg.LicenseCount)
		writeAPIError(w, http.StatusForbidden, "MaximumLicenseCountExceeded",
			"The maximum number of concurrent sessions ("+strconv.Itoa(s.cfg.LicenseCount)+") for this instance has been reached.")
		return
	}
	call.Session, call.NewSession = id, opened
	s.serveOData(w, r, p)
}

func httpCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	default:
		return strings.ReplaceAll(http.StatusText(status), " ", "")
	}
}

func callerJSON(p *principal) map[string]any {
	return map[string]any{"kind": p.kind, "subject": p.subject, "client_id": p.clientID}
}

func (s *Server) serveOData(w http.ResponseWriter, r *http.Request, p *principal) {
	w.Header().Set("OData-Version", "4.0")
	root := s.base(r) + pathODataRoot + "/"
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, pathODataRoot), "/")
	if rest == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the service document is read-only")
			return
		}
		var sets []map[string]any
		for _, name := range entitySetNames {
			sets = append(sets, map[string]any{"name": name, "kind": "EntitySet", "url": name})
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": root + "$metadata", "value": sets, "caller": callerJSON(p)})
		return
	}
	name, key, hasKey, ok := parseEntityPath(rest)
	s.mu.Lock()
	_, known := s.data[name]
	s.mu.Unlock()
	if !ok || !known {
		writeAPIError(w, http.StatusNotFound, "NotFound", "The requested resource was not found: "+truncate(rest))
		return
	}
	ctx := root + "$metadata#" + name
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if hasKey {
			rec := s.findRecord(name, key)
			if rec == nil {
				writeAPIError(w, http.StatusNotFound, "NotFound", "No "+name+" entity with key "+truncate(key)+".")
				return
			}
			rec["@odata.context"] = ctx + "/$entity"
			rec["caller"] = callerJSON(p)
			writeJSON(w, http.StatusOK, rec)
			return
		}
		top, skip, err := pageParams(r)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		s.mu.Lock()
		all := s.data[name]
		var page []map[string]any
		for i := skip; i < len(all) && (top < 0 || len(page) < top); i++ {
			page = append(page, copyRecord(all[i]))
		}
		s.mu.Unlock()
		if page == nil {
			page = []map[string]any{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": ctx, "value": page, "caller": callerJSON(p)})
	case http.MethodPost:
		if hasKey {
			writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "POST to an entity set, not to an entity")
			return
		}
		rec, err := readRecord(w, r)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		if n, _ := rec["Name"].(string); strings.TrimSpace(n) == "" {
			// ERP.net reports business rule violations as HTTP 500.
			writeAPIError(w, http.StatusInternalServerError, "BusinessRuleViolation", "Name is required.")
			return
		}
		rec["Id"] = newGUID()
		s.mu.Lock()
		s.data[name] = append(s.data[name], rec)
		out := copyRecord(rec)
		s.mu.Unlock()
		out["@odata.context"] = ctx + "/$entity"
		out["caller"] = callerJSON(p)
		w.Header().Set("Location", root+name+"("+out["Id"].(string)+")")
		writeJSON(w, http.StatusCreated, out)
	case http.MethodPatch, "MERGE", http.MethodPut:
		if !hasKey {
			writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "update an entity, not an entity set")
			return
		}
		upd, err := readRecord(w, r)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		if v, has := upd["Name"]; has {
			if n, _ := v.(string); strings.TrimSpace(n) == "" {
				writeAPIError(w, http.StatusInternalServerError, "BusinessRuleViolation", "Name is required.")
				return
			}
		}
		delete(upd, "Id")
		s.mu.Lock()
		var found bool
		for _, rec := range s.data[name] {
			if rec["Id"] == key {
				for k, v := range upd {
					rec[k] = v
				}
				found = true
			}
		}
		s.mu.Unlock()
		if !found {
			writeAPIError(w, http.StatusNotFound, "NotFound", "No "+name+" entity with key "+truncate(key)+".")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if !hasKey {
			writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "delete an entity, not an entity set")
			return
		}
		s.mu.Lock()
		recs := s.data[name]
		found := false
		for i, rec := range recs {
			if rec["Id"] == key {
				s.data[name] = append(recs[:i:i], recs[i+1:]...)
				found = true
				break
			}
		}
		s.mu.Unlock()
		if !found {
			writeAPIError(w, http.StatusNotFound, "NotFound", "No "+name+" entity with key "+truncate(key)+".")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// parseEntityPath splits "Set" or "Set(key)" / "Set('key')"; anything deeper is not supported.
func parseEntityPath(rest string) (name, key string, hasKey, ok bool) {
	if strings.Contains(rest, "/") || rest == "" {
		return "", "", false, false
	}
	open := strings.IndexByte(rest, '(')
	if open < 0 {
		return rest, "", false, true
	}
	if !strings.HasSuffix(rest, ")") || open == 0 {
		return "", "", false, false
	}
	key = rest[open+1 : len(rest)-1]
	key = strings.TrimSuffix(strings.TrimPrefix(key, "'"), "'")
	if key == "" {
		return "", "", false, false
	}
	return rest[:open], key, true, true
}

func pageParams(r *http.Request) (top, skip int, err error) {
	q := r.URL.Query()
	top = -1
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

func readRecord(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	if r.Body == nil {
		return nil, errors.New("a JSON object body is required")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		return nil, errors.New("the body is too large or unreadable")
	}
	var rec map[string]any
	if err := json.Unmarshal(body, &rec); err != nil || rec == nil {
		return nil, errors.New("the body must be a JSON object")
	}
	for k := range rec {
		if strings.HasPrefix(k, "@") || k == "caller" {
			delete(rec, k)
		}
	}
	return rec, nil
}

func (s *Server) findRecord(name, key string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range s.data[name] {
		if rec["Id"] == key {
			return copyRecord(rec)
		}
	}
	return nil
}

func copyRecord(rec map[string]any) map[string]any {
	out := make(map[string]any, len(rec)+2)
	for k, v := range rec {
		out[k] = v
	}
	return out
}

func newGUID() string {
	h := strings.ToLower(randomHex(16))
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

var entitySetNames = []string{"Crm_Sales_Customers", "General_Contacts"}

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
