// Package ratelimit gives every client a token bucket of its own
// (golang.org/x/time/rate): Rate requests per second on average, Burst at
// once.
//
// Clients are keyed by whatever the caller chooses (an API key's client
// name, a remote address), and a bucket is made on a key's first request.
// Keys can be unbounded — a flood from many addresses — so memory is bounded
// as well:
//
//   - A bucket untouched for Burst/Rate seconds is full again, exactly as a
//     new one would be: forgetting it changes nothing. Buckets live in two
//     generations; at most every Burst/Rate seconds the older generation is
//     dropped and the current one becomes the older. A bucket used since is
//     moved back into the current generation, so only idle buckets go.
//   - A generation holds at most MaxKeys buckets. When more keys than that
//     are active at once, the older generation is dropped early: memory
//     stays bounded by 2×MaxKeys buckets, and the clients forgotten early get
//     a full bucket again (the limit is lenient only under such a flood).
//
// No goroutine: the generations turn over inside Allow.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds a generation: ~200 bytes a bucket with its map
// entry, so two generations cost at most ~6 MiB.
const DefaultMaxKeys = 16384

// Options configure a Limiter.
type Options struct {
	Rate    float64          // requests per second per key; must be positive
	Burst   int              // requests at once; must be at least 1
	MaxKeys int              // buckets per generation; 0: DefaultMaxKeys
	Now     func() time.Time // the clock, for tests; nil: time.Now
}

// Limiter is a token bucket per key. It is safe for concurrent use.
type Limiter[K comparable] struct {
	limit   rate.Limit
	burst   int
	maxKeys int
	refill  time.Duration // an empty bucket is full again after this
	now     func() time.Time

	mu       sync.Mutex
	cur, old map[K]*rate.Limiter
	turned   time.Time // when cur began
}

// New returns a Limiter; it panics on a Rate or Burst out of range, which
// configuration validation rules out.
func New[K comparable](o Options) *Limiter[K] {
	if !(o.Rate > 0) || math.IsInf(o.Rate, 0) || o.Burst < 1 {
		panic("ratelimit: Rate must be positive and finite, Burst at least 1")
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	refill := time.Duration(float64(o.Burst) / o.Rate * float64(time.Second))
	return &Limiter[K]{
		limit: rate.Limit(o.Rate), burst: o.Burst, maxKeys: o.MaxKeys,
		refill: max(refill, time.Second),
		now:    o.Now,
		cur:    map[K]*rate.Limiter{}, old: map[K]*rate.Limiter{},
		turned: o.Now(),
	}
}

// Allow takes a token from key's bucket and reports true, or, when the
// bucket is empty, reports false and how long until it holds a token again.
// It allocates only for a key it does not know.
func (l *Limiter[K]) Allow(key K) (ok bool, retryIn time.Duration) {
	now := l.now()
	b := l.bucket(key, now)
	if b.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / float64(l.limit) * float64(time.Second)))
}

// Len returns the number of buckets held.
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur) + len(l.old)
}

// bucket returns key's bucket, making one if needed.
func (l *Limiter[K]) bucket(key K, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since := now.Sub(l.turned); since >= l.refill {
		l.turn(now)
		if since >= 2*l.refill { // the older ones are idle for as long
			clear(l.old)
		}
	}
	if b, ok := l.cur[key]; ok {
		return b
	}
	if b, ok := l.old[key]; ok {
		delete(l.old, key)
		l.cur[key] = b
		return b
	}
	if len(l.cur) >= l.maxKeys {
		l.turn(now) // early: forgets buckets that may not be full yet
	}
	b := rate.NewLimiter(l.limit, l.burst)
	l.cur[key] = b
	return b
}

// turn drops the older generation and starts a new one; l.mu is held. The
// maps are reused, so turning over allocates nothing once they have grown.
func (l *Limiter[K]) turn(now time.Time) {
	clear(l.old)
	l.cur, l.old = l.old, l.cur
	l.turned = now
}
