package hybrid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/authcode"
	"github.com/erpnetgo/auth/internal/redact"
)

// Messages of the audit records written by RunAsService and RunBackground.
const (
	auditJobStarted  = "hybrid: service job started"
	auditJobFinished = "hybrid: service job finished"
	auditJobRefused  = "hybrid: service job refused"
)

// RunAsService runs fn as the Trusted Application's System User on behalf
// of the signed-in user who sent r: the pattern for work a user asks for
// but that needs the application's own rights, or must go on after the
// user's request (an import, a nightly report started by hand).
//
// The user's token is not reachable inside fn: fn gets a ServiceAPI and a
// context that carries ctx's cancellation and deadline but none of its
// values (which could hold the user's session or UserAPI). Do not capture
// the request or a UserAPI in fn either.
//
// So that an audit can tell who did what, RunAsService writes two slog
// records to [Config.AuditLogger]: "hybrid: service job started" (level
// INFO) before fn runs and "hybrid: service job finished" after it (INFO
// when fn succeeded, WARN when it returned an error or exited, ERROR when
// it panicked), with these attributes:
//
//	job           the job name
//	run           a random id shared by the two records
//	trigger       "user"
//	triggered_by  the user's subject (ERP.net user name), from the session
//	issuer        the identity server that signed the user in
//	acting_as     "system_user"
//	client_id     the Trusted Application whose System User runs the job
//	start         when fn started
//	outcome       "ok", "error", "canceled", "panic" or "exited" (finished record)
//	duration      how long fn ran (finished record)
//	error         fn's error, if any (finished record)
//
// No record ever contains a token (a token of this App's in fn's error is
// replaced by [REDACTED]). A request without a signed-in user is refused
// with an error matching [authcode.ErrNoSession], and a "hybrid: service job
// refused" record (WARN, with job, client_id, reason and error), before fn
// runs: anonymous requests cannot start System User work. RunAsService returns fn's error; a panic in fn is audited and
// re-panicked.
//
// To let the job outlive the request, call RunAsService in a goroutine with
// context.WithoutCancel(r.Context()) as ctx. The user is looked up with ctx
// (behind WithUser, from r's context without any I/O). After Close it
// returns [auth.ErrClosed].
func (a *App) RunAsService(ctx context.Context, r *http.Request, job string, fn func(ctx context.Context, svc ServiceAPI) error) error {
	if a.closed.Load() {
		return auth.ErrClosed
	}
	if r == nil {
		a.audit.LogAttrs(ctx, slog.LevelWarn, auditJobRefused, slog.String("job", job),
			slog.String("client_id", a.svcID), slog.String("reason", "no request: use RunBackground for jobs no user triggered"))
		return fmt.Errorf("hybrid: RunAsService needs the triggering request (use RunBackground for scheduled jobs): %w", authcode.ErrNoSession)
	}
	subject, issuer, err := a.triggeringUser(ctx, r)
	if err != nil {
		a.audit.LogAttrs(ctx, slog.LevelWarn, auditJobRefused, slog.String("job", job),
			slog.String("client_id", a.svcID), slog.String("reason", "no signed-in user"), slog.String("error", err.Error()))
		return err
	}
	return a.run(ctx, job, []slog.Attr{slog.String("trigger", "user"), slog.String("triggered_by", subject),
		slog.String("issuer", issuer)}, fn)
}

// RunBackground runs fn as the System User for a job no user triggered (a
// schedule, a queue consumer), with the same audit records as RunAsService
// but trigger "background" and no triggered_by.
func (a *App) RunBackground(ctx context.Context, job string, fn func(ctx context.Context, svc ServiceAPI) error) error {
	if a.closed.Load() {
		return auth.ErrClosed
	}
	return a.run(ctx, job, []slog.Attr{slog.String("trigger", "background")}, fn)
}

// triggeringUser finds the subject of r's user without touching a token.
func (a *App) triggeringUser(ctx context.Context, r *http.Request) (subject, issuer string, err error) {
	var s *authcode.Session
	if u, ok := UserFrom(r.Context()); ok && u.u.app == a {
		s = u.u.session
	} else if s, err = a.users.UserSession(r.WithContext(ctx)); err != nil {
		return "", "", err
	}
	return s.Subject, s.Issuer, nil
}

// run runs fn with the audit records; trig are the trigger attributes.
func (a *App) run(ctx context.Context, job string, trig []slog.Attr, fn func(context.Context, ServiceAPI) error) (err error) {
	jctx, cancel := detach(ctx)
	defer cancel()
	svc := ServiceAPI{s: &serviceState{app: a, ctx: jctx}}

	start := time.Now()
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.String("job", job), slog.String("run", runID()))
	attrs = append(attrs, trig...)
	attrs = append(attrs, slog.String("acting_as", "system_user"), slog.String("client_id", a.svcID), slog.Time("start", start))
	a.audit.LogAttrs(ctx, slog.LevelInfo, auditJobStarted, attrs...)

	finished := false
	defer func() {
		if finished {
			return
		}
		p := recover()
		if p == nil { // runtime.Goexit in fn (t.FailNow, say): let it go on
			a.audit.LogAttrs(ctx, slog.LevelWarn, auditJobFinished, append(attrs, slog.String("outcome", "exited"),
				slog.Duration("duration", time.Since(start)))...)
			return
		}
		a.audit.LogAttrs(ctx, slog.LevelError, auditJobFinished, append(attrs, slog.String("outcome", "panic"),
			slog.Duration("duration", time.Since(start)), slog.String("error", a.scrub(fmt.Sprint(p))))...)
		panic(p)
	}()
	err = fn(jctx, svc)
	finished = true

	end := append(attrs, slog.Duration("duration", time.Since(start)))
	level, outcome := slog.LevelInfo, "ok"
	if err != nil {
		level, outcome = slog.LevelWarn, "error"
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			outcome = "canceled"
		}
		end = append(end, slog.String("error", a.scrub(err.Error())))
	}
	a.audit.LogAttrs(ctx, level, auditJobFinished, append(end, slog.String("outcome", outcome))...)
	return err
}

// scrub removes the service tokens this App knows from s (a job's error
// message is the job's own text, which the SDK does not control).
func (a *App) scrub(s string) string {
	if t := a.seen.Load(); t != nil {
		return redact.Scrub(s, t.cur, t.prev)
	}
	return s
}

// detach returns a context without parent's values that is cancelled when
// parent is, and has parent's deadline.
func detach(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stopDeadline := context.CancelFunc(func() {})
	if dl, ok := parent.Deadline(); ok {
		ctx, stopDeadline = context.WithDeadline(ctx, dl)
	}
	stop := context.AfterFunc(parent, func() { cancel(context.Cause(parent)) })
	if parent.Err() != nil {
		cancel(context.Cause(parent))
	}
	return ctx, func() {
		stop()
		stopDeadline()
		cancel(context.Canceled)
	}
}

func runID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
