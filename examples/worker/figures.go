package main

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/erpnetgo/auth"
)

// figures are what an operator watches on an ERP.net worker: every token
// fetched opens a new ERP.net API session (a license slot) on first use, so a
// healthy worker fetches one token per token lifetime and opens one API
// session per token. They are counted through the SDK's hooks (auth.Hooks;
// the otelauth module exports the same events to OpenTelemetry).
type figures struct {
	tokens, tokenFailures, tokenRetries atomic.Int64
	apiSessions, cacheHits, apiRetries  atomic.Int64
	licenseRefusals                     atomic.Int64
}

func (f *figures) hooks() *auth.Hooks {
	return &auth.Hooks{Event: func(_ context.Context, e auth.Event) {
		switch e.Name {
		case "token.issued":
			f.tokens.Add(1)
			f.tokenRetries.Add(int64(max(e.Attempts-1, 0)))
		case "token.failed":
			f.tokenFailures.Add(1)
			f.tokenRetries.Add(int64(max(e.Attempts-1, 0)))
		case "api.session_opened":
			f.apiSessions.Add(1)
		case "token.cache_hit":
			f.cacheHits.Add(1)
		case "api.retry_401", "api.backoff":
			f.apiRetries.Add(1)
		case "api.license_exhausted":
			f.licenseRefusals.Add(1)
		}
	}}
}

// log writes the figures as one record.
func (f *figures) log(log *slog.Logger, msg string) {
	log.Info(msg,
		"tokens_fetched", f.tokens.Load(),
		"token_failures", f.tokenFailures.Load(),
		"token_retries", f.tokenRetries.Load(),
		"api_sessions_opened", f.apiSessions.Load(),
		"cache_hits", f.cacheHits.Load(),
		"api_retries", f.apiRetries.Load(),
		"license_refusals", f.licenseRefusals.Load())
}
