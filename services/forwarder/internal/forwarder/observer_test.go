package forwarder_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
)

// recorder is an Observer that remembers every call, in order.
type recorder struct {
	mu      sync.Mutex
	events  []string
	ages    []time.Duration
	results map[string]int
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) Attempted(n int, took time.Duration) {
	if took <= 0 {
		r.add(fmt.Sprintf("attempt %d took %s", n, took))
		return
	}
	r.add(fmt.Sprintf("attempt %d", n))
}
func (r *recorder) Outcome(o string)        { r.add(o) }
func (r *recorder) DeadLettered(why string) { r.add("dead: " + why) }
func (r *recorder) Result(res string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.results == nil {
		r.results = map[string]int{}
	}
	r.results[res]++
}

func (r *recorder) resultCount(res string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.results[res]
}
func (r *recorder) Delivered(age time.Duration) {
	r.mu.Lock()
	r.ages = append(r.ages, age)
	r.mu.Unlock()
	r.add("delivered after accept")
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.events, ", ")
}

func TestForwarder_TellsTheObserverEveryOutcome(t *testing.T) {
	be := newBackend(t, func(n int) (int, http.Header) {
		return map[int]int{1: 500, 2: 200, 3: 422}[n], nil
	})
	h := start(t, brokertest.Config(t), be.URL)

	accepted := time.Now()
	h.publish(t, "retried", `{}`)
	want := "attempt 1, retry, attempt 2, delivered, delivered after accept"
	brokertest.Eventually(t, 10*time.Second, "a retry and a delivery", func() bool { return h.obs.String() == want })
	h.obs.mu.Lock()
	age := h.obs.ages[0]
	h.obs.mu.Unlock()
	if age <= 0 || age > time.Since(accepted) {
		t.Errorf("end-to-end age %s, want between 0 and %s", age, time.Since(accepted))
	}

	h.publish(t, "refused", `{}`)
	want += ", attempt 1, dead-lettered, dead: " + envelope.ReasonNonRetryable
	brokertest.Eventually(t, 10*time.Second, "a dead letter", func() bool { return h.obs.String() == want })
}
