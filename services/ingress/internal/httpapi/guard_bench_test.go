package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/railco/relay/services/ingress/internal/apikey"
	"github.com/railco/relay/services/ingress/internal/ratelimit"
)

// BenchmarkGuard measures the route middleware alone, in front of a handler
// that does nothing: the API key check (SHA-256 of the key, constant-time
// compare against every client's) and the rate limit, as every registration
// pays them, and the refusals a flood of bad requests costs.
func BenchmarkGuard(b *testing.B) {
	for _, clients := range []int{1, 100} {
		keys, key := guardBenchKeys(b, clients)
		limit := ratelimit.New[string](ratelimit.Options{Rate: 1e9, Burst: 1 << 30})
		addrLimit := ratelimit.New[netip.Addr](ratelimit.Options{Rate: 1e9, Burst: 1 << 30})
		cases := []struct {
			name   string
			chain  []echo.MiddlewareFunc
			header string
			fail   bool
		}{
			{"key", []echo.MiddlewareFunc{requireAPIKey(keys, nopObserver{})}, "Bearer " + key, false},
			{"key+limit", []echo.MiddlewareFunc{requireAPIKey(keys, nopObserver{}), limitRate(limit, clientKey, nopObserver{})}, "Bearer " + key, false},
			{"wrong key", []echo.MiddlewareFunc{requireAPIKey(keys, nopObserver{})}, "Bearer wrong-0123456789abcdefghijklmnopqrstuvwxyz", true},
			{"no key", []echo.MiddlewareFunc{requireAPIKey(keys, nopObserver{})}, "", true},
		}
		if clients == 1 { // independent of the keys
			cases = append(cases, struct {
				name   string
				chain  []echo.MiddlewareFunc
				header string
				fail   bool
			}{"open+limit per address", []echo.MiddlewareFunc{anonymous, limitRate(addrLimit, addrKey, nopObserver{})}, "", false})
		}
		for _, tc := range cases {
			b.Run(fmt.Sprintf("clients=%d/%s", clients, tc.name), func(b *testing.B) {
				h := func(echo.Context) error { return nil }
				for i := len(tc.chain) - 1; i >= 0; i-- {
					h = tc.chain[i](h)
				}
				req := httptest.NewRequest(http.MethodPost, pathRegister, nil)
				req.RemoteAddr = "192.0.2.7:41000"
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				c := echo.New().NewContext(req, httptest.NewRecorder())
				info := &requestInfo{}
				c.Set(infoKey, info) // logRequests' part
				b.ReportAllocs()
				for b.Loop() {
					info.client = ""
					if err := h(c); (err != nil) != tc.fail {
						b.Fatalf("err %v", err)
					}
				}
			})
		}
	}
}

// TestGuard_AllocatesNothingOnTheHotPath keeps BenchmarkGuard's promise: an
// accepted request's key check and rate limit allocate nothing.
func TestGuard_AllocatesNothingOnTheHotPath(t *testing.T) {
	keys, key := guardBenchKeys(t, 10)
	limit := ratelimit.New[string](ratelimit.Options{Rate: 1e9, Burst: 1 << 30})
	addrLimit := ratelimit.New[netip.Addr](ratelimit.Options{Rate: 1e9, Burst: 1 << 30})
	for name, chain := range map[string][]echo.MiddlewareFunc{
		"key+limit":              {requireAPIKey(keys, nopObserver{}), limitRate(limit, clientKey, nopObserver{})},
		"open+limit per address": {anonymous, limitRate(addrLimit, addrKey, nopObserver{})},
	} {
		h := func(echo.Context) error { return nil }
		for i := len(chain) - 1; i >= 0; i-- {
			h = chain[i](h)
		}
		for _, remote := range []string{"192.0.2.7:41000", "[2001:db8::7]:41000"} {
			req := httptest.NewRequest(http.MethodPost, pathRegister, nil)
			req.RemoteAddr = remote
			req.Header.Set("Authorization", "Bearer "+key)
			c := echo.New().NewContext(req, httptest.NewRecorder())
			c.Set(infoKey, &requestInfo{})
			_ = h(c) // the first request of a key makes its bucket
			if allocs := testing.AllocsPerRun(100, func() {
				if err := h(c); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Errorf("%s from %s: %v allocations per request, want 0", name, remote, allocs)
			}
		}
	}
}

func guardBenchKeys(tb testing.TB, n int) (*apikey.Set, string) {
	tb.Helper()
	var lines strings.Builder
	key := ""
	for i := range n {
		key = fmt.Sprintf("key-%04d-0123456789abcdefghijklmnopqrstuvwxyz", i)
		fmt.Fprintf(&lines, "client-%d:%s\n", i, key)
	}
	set, err := apikey.Parse([]byte(lines.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return set, key
}
