package ratelimit_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/services/ingress/internal/ratelimit"
)

// clock is a fake time.Now that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestLimiter_AllowsTheBurstThenTheRate(t *testing.T) {
	clk := newClock()
	l := ratelimit.New[string](ratelimit.Options{Rate: 10, Burst: 3, Now: clk.Now})
	for i := range 3 {
		if ok, _ := l.Allow("railco"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retryIn := l.Allow("railco")
	if ok || retryIn != 100*time.Millisecond {
		t.Fatalf("over the burst: ok %v, retry in %v; want refused, 100ms (one token at 10/s)", ok, retryIn)
	}
	clk.advance(40 * time.Millisecond)
	if ok, retryIn := l.Allow("railco"); ok || retryIn != 60*time.Millisecond {
		t.Fatalf("40ms later: ok %v, retry in %v; want refused, 60ms", ok, retryIn)
	}
	clk.advance(60 * time.Millisecond)
	if ok, _ := l.Allow("railco"); !ok {
		t.Fatal("a token later: refused")
	}
	if ok, _ := l.Allow("railco"); ok {
		t.Fatal("the token was used twice")
	}
}

func TestLimiter_KeysHaveBucketsOfTheirOwn(t *testing.T) {
	clk := newClock()
	l := ratelimit.New[netip.Addr](ratelimit.Options{Rate: 1, Burst: 1, Now: clk.Now})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("a's first request refused")
	}
	if ok, _ := l.Allow(a); ok {
		t.Fatal("a's second request allowed")
	}
	if ok, _ := l.Allow(b); !ok {
		t.Fatal("b refused because of a")
	}
}

func TestLimiter_ForgetsIdleKeys(t *testing.T) {
	clk := newClock()
	// Burst/Rate = 2s: an empty bucket is full again after 2s.
	l := ratelimit.New[string](ratelimit.Options{Rate: 5, Burst: 10, Now: clk.Now})
	for i := range 100 {
		l.Allow(fmt.Sprint("client-", i))
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("%d buckets after 100 keys, want 100", n)
	}
	clk.advance(4 * time.Second) // two refills: every bucket is full again
	l.Allow("client-0")
	if n := l.Len(); n != 1 {
		t.Errorf("%d buckets after everyone was idle for two refills, want 1", n)
	}
}

func TestLimiter_BoundsMemoryUnderAFloodOfKeys(t *testing.T) {
	clk := newClock()
	l := ratelimit.New[netip.Addr](ratelimit.Options{Rate: 1, Burst: 1, MaxKeys: 100, Now: clk.Now})
	for i := range 100_000 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Allow(addr)
		if n := l.Len(); n > 2*100+1 {
			t.Fatalf("%d buckets after %d keys, want at most 2×MaxKeys", n, i+1)
		}
	}
}

// A turn forgets only buckets not used since the one before: a client that
// keeps sending stays limited however many keys come and go.
func TestLimiter_KeepsBucketsInUseAcrossTurns(t *testing.T) {
	clk := newClock()
	l := ratelimit.New[string](ratelimit.Options{Rate: 0.01, Burst: 1, MaxKeys: 1, Now: clk.Now})
	if ok, _ := l.Allow("busy"); !ok {
		t.Fatal("first request refused")
	}
	for i := range 10 {
		l.Allow(fmt.Sprint("newcomer-", i)) // each turns the generations (MaxKeys 1)
		if ok, _ := l.Allow("busy"); ok {
			t.Fatalf("after %d turns the busy client got a fresh bucket", i+1)
		}
	}
}

func TestLimiter_RetryInIsPositive(t *testing.T) {
	clk := newClock()
	l := ratelimit.New[string](ratelimit.Options{Rate: 1000, Burst: 1, Now: clk.Now})
	l.Allow("x")
	if ok, retryIn := l.Allow("x"); ok || retryIn <= 0 || retryIn > time.Millisecond {
		t.Errorf("ok %v, retry in %v; want refused within (0, 1ms]", ok, retryIn)
	}
}

func TestLimiter_ConcurrentUseAllowsExactlyTheBurst(t *testing.T) {
	l := ratelimit.New[string](ratelimit.Options{Rate: 0.001, Burst: 50})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 20 {
		wg.Go(func() {
			for range 10 {
				if ok, _ := l.Allow("shared"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("%d of 200 concurrent requests allowed, want the burst of 50", allowed)
	}
}

func TestLimiter_KnownKeysDoNotAllocate(t *testing.T) {
	l := ratelimit.New[string](ratelimit.Options{Rate: 1e9, Burst: 1 << 20})
	l.Allow("railco")
	if allocs := testing.AllocsPerRun(1000, func() { l.Allow("railco") }); allocs != 0 {
		t.Errorf("Allow allocates %v times for a known key, want 0", allocs)
	}
}

func TestNew_PanicsOnALimitConfigurationRulesOut(t *testing.T) {
	for _, o := range []ratelimit.Options{{Rate: 0, Burst: 1}, {Rate: -1, Burst: 1}, {Rate: 1, Burst: 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", o)
				}
			}()
			ratelimit.New[string](o)
		}()
	}
}

func BenchmarkAllow(b *testing.B) {
	b.Run("known key", func(b *testing.B) {
		l := ratelimit.New[string](ratelimit.Options{Rate: 1e9, Burst: 1 << 20})
		b.ReportAllocs()
		for b.Loop() {
			l.Allow("railco-booking")
		}
	})
	b.Run("known key, parallel", func(b *testing.B) {
		l := ratelimit.New[string](ratelimit.Options{Rate: 1e9, Burst: 1 << 20})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow("railco-booking")
			}
		})
	})
	b.Run("new address each time", func(b *testing.B) {
		l := ratelimit.New[netip.Addr](ratelimit.Options{Rate: 100, Burst: 100})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		}
	})
}
