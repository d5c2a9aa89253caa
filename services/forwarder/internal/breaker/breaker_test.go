package breaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/railco/relay/services/forwarder/internal/breaker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.Write(p) }
func (l *logs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func newBreaker(t *testing.T, probe time.Duration) (*breaker.Breaker, *logs) {
	l := &logs{}
	b := breaker.New(breaker.Options{Threshold: 5, Window: 5, FailureRate: 0.8, MinMessages: 3, ProbeInterval: probe, ProbeMax: 4 * probe},
		slog.New(slog.NewTextHandler(l, nil)))
	t.Cleanup(b.Stop)
	return b, l
}

func TestBreaker_PoisonMessageNeverOpensIt(t *testing.T) {
	b, _ := newBreaker(t, time.Hour)
	// One message failing with 500 over and over, alone or between successes.
	for i := range 50 {
		b.Record("poison", breaker.Failed, false, "500")
		if i%7 == 0 {
			b.Record(fmt.Sprint("ok", i), breaker.None, false, "")
		}
	}
	// Two poison messages are still below MinMessages.
	for range 20 {
		b.Record("poison-2", breaker.Failed, false, "500")
		b.Record("poison", breaker.Failed, false, "500")
	}
	if s := b.State(); s != breaker.Closed {
		t.Errorf("state %v after poison failures, want closed", s)
	}
}

func TestBreaker_Opens(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
		f    breaker.Failure
		want breaker.State
	}{
		{"5xx across three messages", []string{"a", "b", "c", "a", "b"}, breaker.Failed, breaker.Open},
		{"5xx, four failures only", []string{"a", "b", "c", "d"}, breaker.Failed, breaker.Closed},
		{"unreachable, one message", []string{"a", "a", "a", "a", "a"}, breaker.Unreachable, breaker.Open},
		{"credentials refused (401/403)", []string{"a", "b", "a", "b", "a"}, breaker.Refused, breaker.Open},
		{"credentials refused, four only", []string{"a", "b", "c", "d"}, breaker.Refused, breaker.Closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, l := newBreaker(t, time.Hour)
			for _, id := range tt.ids {
				b.Record(id, tt.f, false, "connection refused")
			}
			if s := b.State(); s != tt.want {
				t.Errorf("state %v, want %v", s, tt.want)
			}
			if tt.want == breaker.Open && l.count("catering backend unavailable: connection refused; pausing delivery; next probe in") != 1 {
				t.Errorf("no single pause line in the log:\n%s", l.buf.String())
			}
		})
	}
}

// A backend failing one request in five is not down: failures go through
// the retry tiers and delivery goes on.
func TestBreaker_FlakyBackendKeepsDelivering(t *testing.T) {
	b, _ := newBreaker(t, time.Hour)
	for i := range 500 {
		f := breaker.None
		if i%5 == 0 {
			f = breaker.Failed
		}
		b.Record(fmt.Sprint("m", i), f, false, "500")
	}
	if s := b.State(); s != breaker.Closed {
		t.Errorf("state %v with 20%% failures, want closed", s)
	}
	// Four in five failing across messages is an outage.
	for i := range 5 {
		f := breaker.Failed
		if i == 2 {
			f = breaker.None
		}
		b.Record(fmt.Sprint("n", i), f, false, "503")
	}
	if s := b.State(); s != breaker.Open {
		t.Errorf("state %v with 80%% failures across messages, want open", s)
	}
}

// An answer resets the run of unreachable (or refused) attempts: one message
// refused while others go through never pauses delivery.
func TestBreaker_AnswerResetsTheUnreachableRun(t *testing.T) {
	for _, f := range []breaker.Failure{breaker.Unreachable, breaker.Refused} {
		b, _ := newBreaker(t, time.Hour)
		for i := range 40 {
			b.Record("x", f, false, "reset")
			if i%4 == 3 {
				b.Record("ok", breaker.None, false, "")
			}
		}
		if s := b.State(); s != breaker.Closed {
			t.Errorf("failure %d: state %v, want closed: never 5 in a row", f, s)
		}
	}
	// Unreachable and refused attempts make one run.
	b, _ := newBreaker(t, time.Hour)
	for i := range 5 {
		b.Record("x", []breaker.Failure{breaker.Unreachable, breaker.Refused}[i%2], false, "mixed")
	}
	if s := b.State(); s != breaker.Open {
		t.Errorf("state %v after unreachable and refused attempts in a row, want open", s)
	}
}

func open(b *breaker.Breaker) {
	for range 5 {
		b.Record("x", breaker.Unreachable, false, "refused")
	}
}

// While open, workers wait; one of them probes when due; its success
// releases them all.
func TestBreaker_ProbeThenResume(t *testing.T) {
	b, l := newBreaker(t, 50*time.Millisecond)
	open(b)

	const workers = 8
	probes := make(chan bool, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			probe, err := b.Acquire(context.Background(), 0)
			if err != nil {
				t.Error(err)
			}
			probes <- probe
			if probe {
				b.Record("p", breaker.None, true, "")
			}
		})
	}
	wg.Wait()
	close(probes)
	n := 0
	for p := range probes {
		if p {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d probes, want exactly 1", n)
	}
	if b.State() != breaker.Closed {
		t.Errorf("state %v after a successful probe, want closed", b.State())
	}
	if l.count("pausing delivery") != 1 || l.count("backend available again; resuming") != 1 {
		t.Errorf("want one pause and one resume line:\n%s", l.buf.String())
	}
}

func TestBreaker_FailedProbeKeepsItOpen(t *testing.T) {
	b, l := newBreaker(t, 20*time.Millisecond)
	open(b)
	for range 3 {
		probe, err := b.Acquire(context.Background(), 0)
		if err != nil || !probe {
			t.Fatalf("Acquire = %v, %v; want a probe", probe, err)
		}
		b.Record("p", breaker.Unreachable, true, "refused")
		if s := b.State(); s != breaker.Open {
			t.Fatalf("state %v after a failed probe, want open", s)
		}
	}
	if l.count("pausing delivery") != 1 || l.count("probe failed; still paused") != 3 {
		t.Errorf("want one pause line and three probe lines:\n%s", l.buf.String())
	}
}

func TestBreaker_AcquireGivesUp(t *testing.T) {
	b, _ := newBreaker(t, time.Hour)
	open(b)
	if _, err := b.Acquire(context.Background(), 30*time.Millisecond); !errors.Is(err, breaker.ErrHoldExpired) {
		t.Errorf("Acquire with a hold limit = %v, want ErrHoldExpired", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Acquire(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire after cancel = %v, want context.Canceled", err)
	}
}

func TestBreaker_OnChangeSeesEveryTransition(t *testing.T) {
	var mu sync.Mutex
	var seen []breaker.State
	b := breaker.New(breaker.Options{Threshold: 5, MinMessages: 3, ProbeInterval: 10 * time.Millisecond, ProbeMax: 40 * time.Millisecond,
		OnChange: func(s breaker.State) { mu.Lock(); seen = append(seen, s); mu.Unlock() }},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(b.Stop)
	open(b)
	for _, outcome := range []breaker.Failure{breaker.Unreachable, breaker.None} { // a failed probe, then a good one
		if probe, err := b.Acquire(context.Background(), 0); err != nil || !probe {
			t.Fatalf("Acquire = %v, %v; want a probe", probe, err)
		}
		b.Record("p", outcome, true, "refused")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []breaker.State{breaker.Open, breaker.HalfOpen, breaker.Open, breaker.HalfOpen, breaker.Closed}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("OnChange saw %v, want %v", seen, want)
	}
}
