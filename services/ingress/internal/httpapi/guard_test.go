package httpapi_test

import (
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/apikey"
	"github.com/railco/relay/services/ingress/internal/httpapi"
)

const (
	keyBooking = "K3y-booking-0123456789abcdef"
	keyMobile  = "K3y-mobile-0123456789abcdef"
)

// testKeys is a key set of two clients.
func testKeys(t testing.TB) *apikey.Set {
	t.Helper()
	set, err := apikey.Parse([]byte("railco-booking:" + keyBooking + "\nrailco-mobile:" + keyMobile + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// fakeLimiter answers from its script and records the keys it was asked about.
type fakeLimiter[K comparable] struct {
	mu      sync.Mutex
	keys    []K
	refuse  bool
	retryIn time.Duration
}

func (f *fakeLimiter[K]) Allow(key K) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	if f.refuse {
		return false, f.retryIn
	}
	return true, 0
}

func (f *fakeLimiter[K]) asked() []K {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.keys)
}

func newGuardedServer(t testing.TB, pub httpapi.Publisher, opts ...httpapi.Option) (*httpapi.Server, *syncBuffer, *recorder) {
	t.Helper()
	cfg := testConfig(t)
	logs := &syncBuffer{}
	obs := &recorder{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return httpapi.New(cfg, pub, topology.New(cfg.Topology), log, append([]httpapi.Option{httpapi.WithObserver(obs)}, opts...)...), logs, obs
}

func TestRegister_WithoutAKnownKeyIs401AndNothingIsPublished(t *testing.T) {
	tests := []struct {
		name      string
		header    []string
		challenge string
		errorHas  string
		reason    string
	}{
		{"no Authorization", nil, `Bearer realm="relay"`, "missing API key", "missing"},
		{"another scheme", []string{"Authorization", "Basic cmFpbGNvOnNlY3JldA=="}, `Bearer realm="relay"`, "missing API key", "missing"},
		{"the key without a scheme", []string{"Authorization", keyBooking}, `Bearer realm="relay"`, "missing API key", "missing"},
		{"Bearer without a token", []string{"Authorization", "Bearer"}, `Bearer realm="relay", error="invalid_request"`, "malformed Authorization", "malformed"},
		{"Bearer and blanks", []string{"Authorization", "Bearer    "}, `Bearer realm="relay", error="invalid_request"`, "malformed Authorization", "malformed"},
		{"two tokens", []string{"Authorization", "Bearer " + keyBooking + " " + keyMobile}, `Bearer realm="relay", error="invalid_request"`, "malformed Authorization", "malformed"},
		{"Authorization twice", []string{"Authorization", "Bearer " + keyBooking, "Authorization", "Bearer " + keyBooking}, `Bearer realm="relay", error="invalid_request"`, "malformed Authorization", "malformed"},
		{"wrong key", []string{"Authorization", "Bearer wrong-key-0123456789abcdef"}, `Bearer realm="relay", error="invalid_token"`, "invalid API key", "invalid"},
		{"a prefix of a key", []string{"Authorization", "Bearer " + keyBooking[:20]}, `Bearer realm="relay", error="invalid_token"`, "invalid API key", "invalid"},
		{"a key in other case", []string{"Authorization", "Bearer " + strings.ToUpper(keyBooking)}, `Bearer realm="relay", error="invalid_token"`, "invalid API key", "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{ready: true}
			lim := &fakeLimiter[string]{}
			srv, logs, obs := newGuardedServer(t, pub, httpapi.WithAPIKeys(testKeys(t)), httpapi.WithClientRateLimit(lim))
			res := serve(t, srv, request(seedBody(t), tt.header...))
			if res.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", res.status, res.raw)
			}
			if got := res.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if msg, _ := res.body["error"].(string); !strings.Contains(msg, tt.errorHas) {
				t.Errorf("error %q does not mention %q", msg, tt.errorHas)
			}
			if n := len(pub.published()); n != 0 {
				t.Errorf("published %d messages, want 0", n)
			}
			if n := len(lim.asked()); n != 0 {
				t.Errorf("the limiter was asked %d times: an unauthenticated request used a client's allowance", n)
			}
			if !slices.Equal(obs.authFailures, []string{tt.reason}) || len(obs.clients) != 0 {
				t.Errorf("observed auth failures %q and clients %q, want [%s] and none", obs.authFailures, obs.clients, tt.reason)
			}
			for _, line := range logs.lines(t) {
				if line["msg"] == "request" && (line["status"] != 401.0 || line["client"] != nil) {
					t.Errorf("log line %v: want status 401 and no client", line)
				}
			}
			for _, key := range []string{keyBooking, keyMobile} {
				if strings.Contains(logs.String(), key) || strings.Contains(res.raw, key) {
					t.Errorf("a key shows in the logs or the answer")
				}
			}
		})
	}
}

func TestRegister_AKnownKeyNamesItsClient(t *testing.T) {
	pub := &fakePublisher{ready: true}
	srv, logs, obs := newGuardedServer(t, pub, httpapi.WithAPIKeys(testKeys(t)))
	for _, header := range [][]string{
		{"Authorization", "Bearer " + keyMobile},
		{"Authorization", "bearer  " + keyMobile}, // scheme in any case, more than one space
	} {
		if res := serve(t, srv, request(seedBody(t), header...)); res.status != http.StatusAccepted {
			t.Fatalf("%q: status %d, want 202: %s", header[1], res.status, res.raw)
		}
	}
	if n := len(pub.published()); n != 2 {
		t.Fatalf("published %d, want 2", n)
	}
	lines := logs.lines(t)
	if len(lines) != 2 || lines[0]["client"] != "railco-mobile" || lines[0]["outcome"] != "accepted" {
		t.Errorf("log %v: want two request lines with client railco-mobile", lines)
	}
	if strings.Contains(logs.String(), keyMobile) {
		t.Error("the key shows in the log")
	}
	if got := strings.Join(obs.clients, ", "); got != "railco-mobile 202, railco-mobile 202" {
		t.Errorf("ClientAnswered %s", got)
	}
	// Other routes need no key: the probes stay open to the kubelet.
	if res := serve(t, srv, request(nil)); res.status != http.StatusUnauthorized {
		t.Errorf("POST without key after: %d", res.status)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		req, _ := http.NewRequest(http.MethodGet, path, nil)
		if res := serve(t, srv, req); res.status != http.StatusOK {
			t.Errorf("GET %s without a key: %d, want 200", path, res.status)
		}
	}
}

func TestRegister_OverTheRateLimitIs429AndNothingIsPublished(t *testing.T) {
	tests := []struct {
		retryIn time.Duration
		want    string
	}{
		{0, "1"}, // never 0
		{time.Millisecond, "1"},
		{time.Second, "1"},
		{1001 * time.Millisecond, "2"}, // rounded up
		{42 * time.Second, "42"},
	}
	for _, tt := range tests {
		t.Run(tt.retryIn.String(), func(t *testing.T) {
			pub := &fakePublisher{ready: true}
			lim := &fakeLimiter[string]{refuse: true, retryIn: tt.retryIn}
			srv, logs, obs := newGuardedServer(t, pub, httpapi.WithAPIKeys(testKeys(t)), httpapi.WithClientRateLimit(lim))
			res := serve(t, srv, request(seedBody(t), "Authorization", "Bearer "+keyBooking))
			if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") != tt.want {
				t.Fatalf("status %d, Retry-After %q; want 429, %s: %s", res.status, res.header.Get("Retry-After"), tt.want, res.raw)
			}
			if msg, _ := res.body["error"].(string); !strings.Contains(msg, "too many requests") {
				t.Errorf("error %q", msg)
			}
			if n := len(pub.published()); n != 0 {
				t.Errorf("published %d messages, want 0", n)
			}
			if got := lim.asked(); !slices.Equal(got, []string{"railco-booking"}) {
				t.Errorf("limiter asked about %q, want the client's name", got)
			}
			if !slices.Equal(obs.rateLimited, []string{"railco-booking"}) {
				t.Errorf("RateLimited %q", obs.rateLimited)
			}
			if line := logs.lines(t)[0]; line["outcome"] != "rate_limited" || line["client"] != "railco-booking" {
				t.Errorf("log line %v", line)
			}
		})
	}
}

func TestRegister_OpenIngressLimitsPerAddress(t *testing.T) {
	tests := []struct {
		remote string
		key    string
	}{
		{"192.0.2.7:41000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:41000", "192.0.2.7"},                  // IPv4-mapped: the IPv4 address
		{"[2001:db8:1:2:3:4:5:6]:41000", "2001:db8:1:2::"},         // IPv6: its /64
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", "2001:db8:1:2::"}, // the same /64
		{"[fe80::1%eth0]:1", "fe80::"},
		{"not an address", "invalid IP"}, // the zero Addr: one bucket for all such
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			pub := &fakePublisher{ready: true}
			lim := &fakeLimiter[netip.Addr]{}
			srv, logs, _ := newGuardedServer(t, pub, httpapi.WithAddrRateLimit(lim))
			req := request(seedBody(t))
			req.RemoteAddr = tt.remote
			if res := serve(t, srv, req); res.status != http.StatusAccepted {
				t.Fatalf("status %d, want 202", res.status)
			}
			if got := lim.asked(); len(got) != 1 || got[0].String() != tt.key {
				t.Errorf("limiter asked about %v, want %s", got, tt.key)
			}
			if line := logs.lines(t)[0]; line["client"] != "anonymous" {
				t.Errorf("log line %v: want client anonymous", line)
			}
		})
	}
}
