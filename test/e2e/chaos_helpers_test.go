//go:build chaos || cluster

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/topology"
)

// fastRetries is a retry schedule short enough for a scenario to see
// messages come back from their tiers.
func fastRetries() topology.Config {
	return topology.Config{MaxAttempts: 4, RetryInitial: 200 * time.Millisecond, RetryMultiplier: 2, RetryMax: 2 * time.Second, DeliveryLimit: 100,
		Events: true, EventsMaxAge: topology.DefaultEventsMaxAge, EventsMaxBytes: topology.DefaultEventsMaxBytes} // events on, as by default
}

// topologyEnv is cfg as the services read it from their environment.
func topologyEnv(cfg topology.Config) map[string]string {
	return map[string]string{
		"MAX_DELIVERY_ATTEMPTS":  strconv.Itoa(cfg.MaxAttempts),
		"RETRY_INITIAL_INTERVAL": cfg.RetryInitial.String(),
		"RETRY_MULTIPLIER":       strconv.FormatFloat(cfg.RetryMultiplier, 'f', -1, 64),
		"RETRY_MAX_INTERVAL":     cfg.RetryMax.String(),
		"EVENTS":                 map[bool]string{true: "on", false: "off"}[cfg.Events],
	}
}

// answer is what the chaos backend does with one request.
type answer int

const (
	answerOK      answer = iota
	answerFail           // 500
	answerTimeout        // no answer until the client gives up
	answerReset          // connection closed without an answer
	answerRefuse         // 400: a permanent refusal, dead-lettered at once
)

// chaosBackend is the Catering endpoint of the chaos suite: it records every
// successful delivery by Idempotency-Key and answers as decide says.
type chaosBackend struct {
	*httptest.Server
	decide atomic.Pointer[func(key string, body []byte) answer]

	mu        sync.Mutex
	delivered map[string]int       // 2xx answers per key
	attempts  map[string][]string  // X-Delivery-Attempt of every request per key
	firstAt   map[string]time.Time // first 2xx
}

func newChaosBackend(t *testing.T, decide func(key string, body []byte) answer) *chaosBackend {
	b := &chaosBackend{delivered: map[string]int{}, attempts: map[string][]string{}, firstAt: map[string]time.Time{}}
	b.setDecide(decide)
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *chaosBackend) setDecide(decide func(key string, body []byte) answer) {
	b.decide.Store(&decide)
}

func (b *chaosBackend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	b.mu.Lock()
	b.attempts[key] = append(b.attempts[key], r.Header.Get("X-Delivery-Attempt"))
	b.mu.Unlock()
	switch (*b.decide.Load())(key, body) {
	case answerFail:
		w.WriteHeader(http.StatusInternalServerError)
		return
	case answerTimeout:
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	case answerReset:
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	case answerRefuse:
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.delivered[key]++
	if _, ok := b.firstAt[key]; !ok {
		b.firstAt[key] = time.Now()
	}
	b.mu.Unlock()
	_, _ = io.WriteString(w, `{"success":true}`)
}

// tally compares what was accepted with what arrived.
type tally struct {
	accepted, delivered, lost, duplicates int
}

func (b *chaosBackend) tally(accepted []string) tally {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := tally{accepted: len(accepted)}
	for _, id := range accepted {
		n := b.delivered[id]
		if n == 0 {
			t.lost++
			continue
		}
		t.delivered++
		t.duplicates += n - 1
	}
	return t
}

func (b *chaosBackend) requestsFor(key string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.attempts[key]...)
}

// waitDelivered waits until every accepted id arrived, then returns the tally.
func (b *chaosBackend) waitDelivered(t *testing.T, accepted []string, timeout time.Duration) tally {
	t.Helper()
	tl := b.awaitDelivered(accepted, timeout)
	if tl.lost != 0 {
		t.Errorf("after %s, %d of %d accepted registrations never reached the backend", timeout, tl.lost, tl.accepted)
	}
	return tl
}

// awaitDelivered is waitDelivered that leaves judging the tally to the caller.
func (b *chaosBackend) awaitDelivered(accepted []string, timeout time.Duration) tally {
	deadline := time.Now().Add(timeout)
	for {
		tl := b.tally(accepted)
		if tl.lost == 0 || time.Now().After(deadline) {
			return tl
		}
		time.Sleep(100 * time.Millisecond) // the backend's maps have no event to wait on
	}
}

// loader posts registrations as a well-behaved client does: each with its
// own Idempotency-Key, retried with the same key until it gets a 202. Given
// several ingresses, it spreads its requests over them round robin, retries
// included, as a load balancer would. It records the outcome of every request.
type loader struct {
	addrs    atomic.Pointer[[]string]
	next     atomic.Uint64
	mu       sync.Mutex
	accepted []string
	outcomes []outcome
	retries  atomic.Int64
	client   *http.Client
	enough   chan struct{} // closed by stopFeeding
	stopOnce sync.Once
}

// outcome is one request's answer as the client saw it.
type outcome struct {
	addr     string
	at       time.Time // when the answer (or the error) came
	accepted bool      // 202
}

func newLoader(addrs ...string) *loader {
	l := &loader{client: &http.Client{Timeout: 10 * time.Second}, enough: make(chan struct{})}
	l.setAddr(addrs...)
	return l
}

func (l *loader) setAddr(addrs ...string) { l.addrs.Store(&addrs) }

// stopFeeding makes run send no new registration; those under way go on
// until accepted, and run returns then.
func (l *loader) stopFeeding() { l.stopOnce.Do(func() { close(l.enough) }) }

func (l *loader) pick() string {
	addrs := *l.addrs.Load()
	return addrs[(l.next.Add(1)-1)%uint64(len(addrs))]
}

func (l *loader) acceptedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.accepted...)
}

func (l *loader) record(addr string, accepted bool, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes = append(l.outcomes, outcome{addr: addr, at: time.Now(), accepted: accepted})
	if accepted {
		l.accepted = append(l.accepted, id)
	}
}

// send posts until accepted; a 4xx answer is a test failure.
func (l *loader) send(ctx context.Context, id string, body []byte) error {
	for {
		addr := l.pick()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/catering/register", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", id)
		resp, err := l.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			l.record(addr, resp.StatusCode == http.StatusAccepted, id)
			switch {
			case resp.StatusCode == http.StatusAccepted:
				return nil
			case resp.StatusCode != http.StatusServiceUnavailable:
				return fmt.Errorf("%s: answered %d", id, resp.StatusCode)
			}
		} else if ctx.Err() == nil {
			l.record(addr, false, id)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.retries.Add(1)
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond) // client back-off
	}
}

// run sends n registrations named prefix-i from workers goroutines, at most
// rate per second (0: as fast as they go), or fewer when stopFeeding is called.
func (l *loader) run(ctx context.Context, prefix string, n, workers int, rate float64, body func(i int) []byte) error {
	ids := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range ids {
				if err := l.send(ctx, fmt.Sprintf("%s-%05d", prefix, i), body(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var tick <-chan time.Time
	if rate > 0 {
		ticker := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer ticker.Stop()
		tick = ticker.C
	}
	var err error
feed:
	for i := range n {
		if tick != nil {
			select {
			case <-tick:
			case <-l.enough:
				break feed
			}
		}
		select {
		case ids <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		case <-l.enough:
			break feed
		}
	}
	close(ids)
	wg.Wait()
	close(errs)
	if err != nil {
		return err
	}
	return <-errs // nil when no worker failed
}

// amqpTarget is where a scenario's broker is: the chaos suite's single node
// or the cluster suite's three.
type amqpTarget interface {
	// amqpURL is the services' AMQP_URL.
	amqpURL() string
	// dial connects the test itself to a node that answers.
	dial() (*amqp.Connection, error)
}

func (b *privateBroker) amqpURL() string { return b.URL() }

func (b *privateBroker) dial() (*amqp.Connection, error) { return amqp.Dial(b.URL()) }

// chaosTopology names a scenario's queues on the private broker and deletes
// them afterwards.
func chaosTopology(t *testing.T, b amqpTarget, cfg topology.Config) *topology.Topology {
	t.Helper()
	cfg.Prefix = brokertest.Prefix(t)
	topo := topology.New(cfg)
	t.Cleanup(func() {
		if conn, err := b.dial(); err == nil {
			_ = topo.Delete(conn)
			conn.Close()
		}
	})
	return topo
}

// depth returns a queue's ready messages on the private broker.
func depth(t *testing.T, b amqpTarget, queue string) int {
	t.Helper()
	n, err := queueDepth(b, queue)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func queueDepth(b amqpTarget, queue string) (int, error) {
	conn, err := b.dial()
	if err != nil {
		return 0, fmt.Errorf("dial private broker: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", queue, err)
	}
	return q.Messages, nil
}

// envFor returns the environment shared by a scenario's services.
func envFor(b amqpTarget, topo *topology.Topology, extra map[string]string) map[string]string {
	// The private nodes have no plain-http management API; derived from
	// AMQP_URL, its address would be the shared broker's (127.0.0.1:15672).
	env := map[string]string{"AMQP_URL": b.amqpURL(), "TOPOLOGY_PREFIX": topo.Exchange, "LOG_LEVEL": "info", "RABBITMQ_MANAGEMENT_URL": "off"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func clone(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}

func report(t *testing.T, scenario string, tl tally, extra string) {
	line := fmt.Sprintf("chaos %s: accepted=%d delivered=%d lost=%d duplicates=%d %s", scenario, tl.accepted, tl.delivered, tl.lost, tl.duplicates, extra)
	t.Log(line)
	fmt.Println(line)
}

func mustStop(t *testing.T, p *process) {
	t.Helper()
	if err := p.stop(t, 30*time.Second); err != nil {
		var exit interface{ ExitCode() int }
		if errors.As(err, &exit) {
			t.Errorf("%s exited with code %d after SIGTERM, want 0", p.name, exit.ExitCode())
			return
		}
		t.Errorf("%s: %v", p.name, err)
	}
}

func contains(s, sub string) int { return strings.Count(s, sub) }
