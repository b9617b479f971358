package authcode

import (
	"context"
	"fmt"
	"net/url"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode/internal/sessions"
	"github.com/erpnetgo/auth/internal/discovery"
	"github.com/erpnetgo/auth/internal/redact"
)

// redeem is the session engine's Redeem: it redeems cur's refresh token at
// the token endpoint and returns the next record (the engine saves it).
func (c *Client) redeem(ctx context.Context, cur *sessions.Record) (*sessions.Record, error) {
	doc, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := c.tep.Exchange(ctx, doc, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cur.RefreshToken}})
	if err != nil {
		return nil, err
	}
	idToken := ""
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		if idToken, err = c.checkRefreshedIDToken(ctx, doc, raw, cur); err != nil {
			return nil, err
		}
	}
	return cur.WithTokens(tok, idToken), nil
}

// checkRefreshedIDToken verifies an ID token from a refresh (OpenID Connect
// Core §12.2): signature, iss, exp, aud, azp and iat as at sign-in
// (checkIDToken); the same sub, aud, azp and auth_time as the sign-in's ID
// token; no nonce to check. It returns the token to keep ("" keeps the
// previous one when this one is rejected: the refreshed access token is
// still used) or an error when it names another user.
func (c *Client) checkRefreshedIDToken(ctx context.Context, doc *discovery.Document, raw string, cur *sessions.Record) (string, error) {
	v, err := c.idVerifier(doc)
	if err != nil {
		c.log.Warn("authcode: cannot verify the refreshed ID token; keeping the previous one", "error", err.Error())
		return "", nil
	}
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		c.log.Warn("authcode: refreshed ID token rejected; keeping the previous one", "error", redact.Scrub(err.Error(), raw))
		return "", nil
	}
	if idt.Subject != cur.Subject {
		return "", &auth.Error{Op: "token refresh", Kind: auth.ErrReauthRequired,
			Err: fmt.Errorf("%w: the refreshed ID token names another subject", ErrInvalidIDToken)}
	}
	err = c.checkIDToken(idt, false)
	if err == nil {
		err = checkRefreshedClaims(idt, cur.Claims)
	}
	if err != nil {
		c.log.Warn("authcode: refreshed ID token rejected; keeping the previous one", "error", err.Error())
		return "", nil
	}
	return raw, nil
}
