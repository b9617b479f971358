package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/internal/retry"
)

func get(url string) func(ctx context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}
}

var fast = retry.Policy{Base: time.Millisecond, Cap: 2 * time.Millisecond}

func TestSendRetriesTransientStatusesAndReturnsFinal(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.WriteHeader(503)
		case 2:
			w.WriteHeader(429)
		default:
			w.WriteHeader(400)
			w.Write([]byte("final"))
		}
	}))
	defer srv.Close()
	resp, attempts, err := Send(context.Background(), Request{Op: "t", Policy: fast, Build: get(srv.URL)})
	if err != nil || attempts != 3 || resp.Status != 400 || string(resp.Body) != "final" {
		t.Fatalf("attempts=%d err=%v resp=%+v", attempts, err, resp)
	}
}

// TestSendLimitsBody: an answer over the limit is a temporary failure,
// retried unless the request is one-time, which says why in the error.
func TestSendLimitsBody(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Write([]byte(strings.Repeat("x", 2048)))
	}))
	defer srv.Close()
	_, attempts, err := Send(context.Background(), Request{Op: "t", Policy: fast, Limit: 1024, Build: get(srv.URL)})
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, auth.ErrTemporary) || n.Load() != 4 || attempts != 4 {
		t.Fatalf("err=%v requests=%d", err, n.Load())
	}
	n.Store(0)
	_, _, err = Send(context.Background(), Request{Op: "t", Policy: fast, Limit: 1024, Build: get(srv.URL), OneTime: "it redeems a code"})
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, auth.ErrTemporary) || n.Load() != 1 || !strings.HasSuffix(err.Error(), "not retried: it redeems a code [temporary failure]") {
		t.Fatalf("err=%v requests=%d", err, n.Load())
	}
}

// TestSendCheck: an answer Check refuses is retried like a 5xx, and the
// first one it accepts is returned.
func TestSendCheck(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, n.Add(1))
	}))
	defer srv.Close()
	check := func(r *Response) error {
		if string(r.Body) != "3" {
			return errors.New("not yet")
		}
		return nil
	}
	resp, attempts, err := Send(context.Background(), Request{Op: "t", Policy: fast, Build: get(srv.URL), Check: check})
	if err != nil || attempts != 3 || string(resp.Body) != "3" {
		t.Fatalf("attempts=%d err=%v", attempts, err)
	}
	n.Store(0)
	resp, attempts, err = Send(context.Background(), Request{Op: "t", Policy: fast, Build: get(srv.URL), Check: check, OneTime: "once"})
	if resp != nil || attempts != 1 || !errors.Is(err, auth.ErrTemporary) || !strings.Contains(err.Error(), "not yet; not retried: once") {
		t.Fatalf("attempts=%d err=%v", attempts, err)
	}
}

func TestSendNetworkErrorIsTemporaryAfterRetries(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, attempts, err := Send(context.Background(), Request{Op: "t", Policy: fast, Build: get(url)})
	var ae *auth.Error
	if !errors.Is(err, auth.ErrTemporary) || !errors.As(err, &ae) || ae.Attempts != 4 || attempts != 4 {
		t.Fatalf("attempts=%d err=%v", attempts, err)
	}
}

func TestSendHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, attempts, err := Send(ctx, Request{Op: "t", Policy: fast, Build: get(srv.URL)})
	if !errors.Is(err, context.DeadlineExceeded) || attempts != 1 {
		t.Fatalf("attempts=%d err=%v", attempts, err)
	}
}

func TestRetryAfterBeyondTheCapIsRemembered(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	var hold retry.Hold
	req := Request{Op: "t", Policy: fast, Hold: &hold, Build: get(srv.URL)}
	resp, attempts, err := Send(context.Background(), req)
	if err != nil || attempts != 1 || resp.Status != http.StatusTooManyRequests {
		t.Fatalf("a 60 s Retry-After is past the 30 s cap: want one attempt, got %d (err %v)", attempts, err)
	}
	// The next calls fail fast, without a request, saying when to retry.
	for i := 0; i < 3; i++ {
		_, attempts, err = Send(context.Background(), req)
		var ae *auth.Error
		if !errors.Is(err, auth.ErrTemporary) || !errors.As(err, &ae) || ae.RetryAfter <= 50*time.Second || attempts != 0 {
			t.Fatalf("call %d: attempts=%d err=%v", i, attempts, err)
		}
	}
	if n.Load() != 1 {
		t.Fatalf("requests = %d, want 1", n.Load())
	}
}

// TestSendHTTPSToPlainHTTP: an https URL for a server that speaks plain
// http is a misconfiguration, said in plain words, and not retried (issue
// 23: it was ErrTemporary, and the worker example retried it forever).
func TestSendHTTPSToPlainHTTP(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	defer srv.Close()
	u := "https://" + strings.TrimPrefix(srv.URL, "http://") + "/.well-known/openid-configuration"
	_, attempts, err := Send(context.Background(), Request{Op: "discovery", Policy: fast, Build: get(u)})
	if !errors.Is(err, auth.ErrMisconfigured) || errors.Is(err, auth.ErrTemporary) || attempts != 1 {
		t.Fatalf("attempts=%d err=%v", attempts, err)
	}
	if !strings.Contains(err.Error(), "speaks plain http, not https") {
		t.Fatalf("the error does not say what is wrong: %v", err)
	}
}
