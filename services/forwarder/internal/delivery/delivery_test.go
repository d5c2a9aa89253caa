package delivery_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/services/forwarder/internal/delivery"
)

var nonRetryable = map[int]bool{400: true, 401: true, 403: true, 404: true, 405: true, 409: true, 410: true, 413: true, 415: true, 422: true}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		res  delivery.Result
		want delivery.Outcome
	}{
		{"200", delivery.Result{Status: 200}, delivery.Delivered},
		{"202", delivery.Result{Status: 202}, delivery.Delivered},
		{"204", delivery.Result{Status: 204}, delivery.Delivered},
		{"transport error", delivery.Result{Err: errors.New("connection refused")}, delivery.Retry},
		{"408", delivery.Result{Status: 408}, delivery.Retry},
		{"425", delivery.Result{Status: 425}, delivery.Retry},
		{"429", delivery.Result{Status: 429}, delivery.Retry},
		{"500", delivery.Result{Status: 500}, delivery.Retry},
		{"502", delivery.Result{Status: 502}, delivery.Retry},
		{"503", delivery.Result{Status: 503}, delivery.Retry},
		{"unlisted 402", delivery.Result{Status: 402}, delivery.Retry},
		{"400", delivery.Result{Status: 400}, delivery.Reject},
		{"404", delivery.Result{Status: 404}, delivery.Reject},
		{"422", delivery.Result{Status: 422}, delivery.Reject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := delivery.Classify(tt.res, nonRetryable); got != tt.want {
				t.Errorf("Classify = %v, want %v", got, tt.want)
			}
		})
	}
	// The set is configuration: 500 can be made permanent, 422 transient.
	if got := delivery.Classify(delivery.Result{Status: 422}, map[int]bool{500: true}); got != delivery.Retry {
		t.Errorf("422 outside the set: %v, want retry", got)
	}
}

func TestDeliver_SendsHeadersAndBody(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, body = r, string(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	c := delivery.NewClient(srv.URL+"/catering", 1)
	defer c.Close()

	res := c.Deliver(context.Background(), delivery.Request{ID: "k-1", Attempt: 3, Body: []byte(" {\"a\": 1}\n")})
	if res.Status != 202 || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
	if got.Method != http.MethodPost || got.URL.Path != "/catering" || body != " {\"a\": 1}\n" {
		t.Errorf("%s %s body %q", got.Method, got.URL.Path, body)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "Idempotency-Key": "k-1", "X-Delivery-Attempt": "3"} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
}

func TestDeliver_Failures(t *testing.T) {
	long := strings.Repeat("x", 5000)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/long":
			w.WriteHeader(500)
			_, _ = io.WriteString(w, long)
		case "/later":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
		case "/date":
			w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(503)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for handlers
	call := func(path string, timeout time.Duration) delivery.Result {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return delivery.NewClient(srv.URL+path, 1).Deliver(ctx, delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")})
	}

	res := call("/long", time.Second)
	var se *delivery.StatusError
	if !errors.As(res.Err, &se) || se.Code != 500 || len(se.Body) != 1024 {
		t.Errorf("500 with a long body: %v (body kept %d bytes, want 1024)", res.Err, len(se.Body))
	}
	if res := call("/later", time.Second); res.Status != 429 || res.RetryAfter != 7*time.Second {
		t.Errorf("429: status %d retry-after %s, want 7s", res.Status, res.RetryAfter)
	}
	if res := call("/date", time.Second); res.RetryAfter < 80*time.Second || res.RetryAfter > 91*time.Second {
		t.Errorf("Retry-After as a date: %s, want about 90s", res.RetryAfter)
	}
	if res := call("/slow", 100*time.Millisecond); res.Status != 0 || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("timeout: status %d err %v", res.Status, res.Err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	refused := delivery.NewClient("http://"+addr, 1).Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1})
	if refused.Status != 0 || refused.Err == nil {
		t.Errorf("refused: %+v", refused)
	}
}

func BenchmarkClassify(b *testing.B) {
	results := []delivery.Result{{Status: 200}, {Status: 500}, {Status: 422}, {Err: errors.New("x")}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = delivery.Classify(results[i%len(results)], nonRetryable)
	}
}
