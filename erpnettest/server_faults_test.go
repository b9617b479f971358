package erpnettest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func (e *env) rawToken() (*http.Response, []byte, error) {
	req, _ := http.NewRequest(http.MethodPost, e.s.URL()+pathToken, strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basicAuth(Demo.WorkerID, Demo.WorkerSecret))
	resp, err := e.c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestFaultKinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, f := range []Fault{{Status: http.StatusServiceUnavailable, RetryAfter: 7 * time.Second}, {Malformed: true},
		{Status: http.StatusBadGateway, Oversized: true}, {Empty: true}, {Drop: true}} {
		e.s.InjectFault("token", f)
	}

	resp, body, err := e.rawToken()
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "7", resp.Header.Get("Retry-After"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	assert.Equal(t, "temporarily_unavailable", m["error"])

	resp, body, err = e.rawToken()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Error(t, json.Unmarshal(body, &m), "malformed JSON")

	resp, body, err = e.rawToken()
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	assert.Equal(t, 10<<20, len(body))
	assert.True(t, json.Valid(body), "oversized body is valid-looking JSON")

	resp, body, err = e.rawToken()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, body)
	assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")

	_, _, err = e.rawToken()
	assert.Error(t, err, "dropped connection")

	// Queue exhausted: normal service.
	resp, body, err = e.rawToken()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, 6, e.s.Requests("token"))
	assert.Equal(t, 6, e.ctl().Grants("client_credentials"), "faulted requests are counted per grant too")

	// Domain API faults use the ERP.net error shape.
	e.s.InjectFault("domainapi", Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	r, b := e.api("GET", customers, nil, "")
	assert.Equal(t, http.StatusTooManyRequests, r.StatusCode)
	assert.Equal(t, "1", r.Header.Get("Retry-After"))
	assert.Contains(t, b["error"], "code")

	// ClearFaults.
	e.s.InjectFault("discovery", Fault{Status: 500, Times: 2})
	e.s.ClearFaults()
	r2, _ := e.get(pathDiscovery)
	assert.Equal(t, http.StatusOK, r2.StatusCode)
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Latency only: delayed, then served normally.
	e.s.InjectFault("jwks", Fault{Latency: 150 * time.Millisecond})
	start := time.Now()
	resp, _ := e.get(pathJWKS)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)

	// Latency then status.
	e.s.InjectFault("discovery", Fault{Latency: 50 * time.Millisecond, Status: http.StatusInternalServerError})
	resp, _ = e.get(pathDiscovery)
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)

	// A client that gives up frees the handler at once, although the fault asked for a minute.
	s, err := Start(Config{})
	require.NoError(t, err)
	s.InjectFault("token", Fault{Latency: time.Minute, Times: 2})
	c := &http.Client{Transport: &http.Transport{}}
	post := func(ctx context.Context, done chan<- error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+pathToken, strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}
	ctx, cancel := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go post(ctx, doneA)
	require.Eventually(t, func() bool { return s.Requests("token") == 1 && s.active.Load() == 1 }, 5*time.Second, 2*time.Millisecond)
	cancel()
	require.Error(t, <-doneA)
	require.Eventually(t, func() bool { return s.active.Load() == 0 }, 5*time.Second, 2*time.Millisecond, "handler not freed")

	// A request still waiting when Close is called is released too.
	doneB := make(chan error, 1)
	go post(context.Background(), doneB)
	require.Eventually(t, func() bool { return s.Requests("token") == 2 && s.active.Load() == 1 }, 5*time.Second, 2*time.Millisecond)
	start = time.Now()
	require.NoError(t, s.Close())
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Zero(t, s.active.Load())
	select {
	case <-doneB:
	case <-time.After(5 * time.Second):
		t.Fatal("request not released by Close")
	}
	c.CloseIdleConnections()
}
