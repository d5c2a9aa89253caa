package httpapi_test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"

	"github.com/railco/relay/pkg/brokertest"

	"github.com/railco/relay/services/ingress/internal/httpapi"
	"github.com/railco/relay/services/ingress/internal/ratelimit"
)

func TestIntegration_WithoutAKnownKeyNothingIsStored(t *testing.T) {
	s := newStack(t, httpapi.WithAPIKeys(testKeys(t)))
	seed := seedBody(t)
	for _, tt := range []struct {
		name   string
		header []string
	}{
		{"no key", nil},
		{"wrong key", []string{"Authorization", "Bearer wrong-key-0123456789abcdef"}},
		{"malformed", []string{"Authorization", "Bearer"}},
		{"Basic", []string{"Authorization", "Basic cmFpbGNvOnNlY3JldA=="}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := post(t, s.url, bytes.NewReader(seed), tt.header...)
			if res.status != http.StatusUnauthorized || res.header.Get("WWW-Authenticate") == "" {
				t.Errorf("status %d, WWW-Authenticate %q; want 401 with a challenge: %s", res.status, res.header.Get("WWW-Authenticate"), res.raw)
			}
			if n := brokertest.Depth(t, s.conn, s.topo.Queue); n != 0 {
				t.Errorf("queue depth %d, want 0", n)
			}
		})
	}
	res := post(t, s.url, bytes.NewReader(seed), "Authorization", "Bearer "+keyBooking)
	if res.status != http.StatusAccepted {
		t.Fatalf("with the key: %d, want 202: %s", res.status, res.raw)
	}
	if n := brokertest.Depth(t, s.conn, s.topo.Queue); n != 1 {
		t.Errorf("queue depth %d after one 202, want 1", n)
	}
}

func TestIntegration_OverTheRateLimitNothingIsStored(t *testing.T) {
	// Two at once, then one every 1000s: the third is refused whatever the
	// test's speed.
	lim := ratelimit.New[string](ratelimit.Options{Rate: 0.001, Burst: 2})
	s := newStack(t, httpapi.WithAPIKeys(testKeys(t)), httpapi.WithClientRateLimit(lim))
	seed := seedBody(t)
	for i := range 2 {
		if res := post(t, s.url, bytes.NewReader(seed), "Authorization", "Bearer "+keyBooking); res.status != http.StatusAccepted {
			t.Fatalf("request %d within the burst: %d: %s", i+1, res.status, res.raw)
		}
	}
	res := post(t, s.url, bytes.NewReader(seed), "Authorization", "Bearer "+keyBooking)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("over the burst: %d, want 429: %s", res.status, res.raw)
	}
	if secs, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || secs < 1 || secs > 1000 {
		t.Errorf("Retry-After %q, want the seconds until a token (1…1000)", res.header.Get("Retry-After"))
	}
	if n := brokertest.Depth(t, s.conn, s.topo.Queue); n != 2 {
		t.Errorf("queue depth %d, want the 2 accepted", n)
	}
	// Another client has an allowance of its own.
	if res := post(t, s.url, bytes.NewReader(seed), "Authorization", "Bearer "+keyMobile); res.status != http.StatusAccepted {
		t.Errorf("another client: %d, want 202", res.status)
	}
}
