package erpnettest

import (
	"strings"

	"github.com/erpnetgo/auth/internal/devserver"
)

// MintPAT issues a personal access token (a reference token, "enrt_" and 64 upper-case hex
// digits) that acts as the named user at the Domain API, valid for a year of server time.
// Scopes are chosen from read, update and DomainApi; none means read and update. An unknown
// user or scope fails the test (or panics for a Server made by Start).
func (s *Server) MintPAT(username string, scopes ...string) string {
	if s.tb != nil {
		s.tb.Helper()
	}
	return s.mint(devserver.RefTokenRequest{Kind: devserver.PAT, Subject: username, Scopes: scopes})
}

// MintSAT issues a service access token (a reference token) that acts as the System User of
// the Trusted Application appID, valid for a year of server time. Scopes are chosen from
// those the application allows among read, update and DomainApi; none means read and update
// where allowed. An application without a System User fails the test (or panics for a
// Server made by Start).
func (s *Server) MintSAT(appID string, scopes ...string) string {
	if s.tb != nil {
		s.tb.Helper()
	}
	return s.mint(devserver.RefTokenRequest{Kind: devserver.SAT, Subject: appID, Scopes: scopes})
}

func (s *Server) mint(req devserver.RefTokenRequest) string {
	tok, err := s.ds.IssueReferenceToken(req)
	if err != nil {
		if s.tb != nil {
			s.tb.Helper()
		}
		s.fail("Mint%s: %s", req.Kind, strings.TrimPrefix(err.Error(), "devserver: "))
		return ""
	}
	return tok
}

// RevokeToken revokes a reference token (PAT or SAT) with immediate effect: the Domain API
// answers 401 to it from now on, and its ERP.net API session ends. An unknown token is ignored.
func (s *Server) RevokeToken(token string) { s.ds.RevokeReferenceToken(token) }
