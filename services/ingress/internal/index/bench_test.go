package index_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/services/ingress/internal/index"
)

// BenchmarkLookup measures GET /catering/registrations/{id}'s part in the
// index: one lookup of a random registration among RELAY_BENCH_REGISTRATIONS
// (default 1,000,000), each with the events of a delivery at once
// (accepted, attempt, delivered), one in ten with two failed attempts
// before. It reports the p50 and p99 of single lookups, the index's size on
// disk and the time to build it from events (make bench-index).
func BenchmarkLookup(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("RELAY_BENCH_REGISTRATIONS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	path := filepath.Join(b.TempDir(), "index.db")
	x, err := index.Open(path, index.Queues{Main: "q", Dead: "q.dead"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	built := time.Now()
	var batch []index.Record
	var off int64
	var nevents int
	add := func(evs ...events.Event) {
		off++
		nevents += len(evs)
		batch = append(batch, index.Record{Offset: off, Body: events.Message(evs).Body})
		if len(batch) == 1000 {
			if _, err := x.Apply(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	t0 := time.Now().Add(-time.Hour)
	for i := range n {
		id := fmt.Sprintf("0193a6c4-%08d-7b21-9d3e-2f4c5b6a7d8e", i)
		at := t0.Add(time.Duration(i) * time.Microsecond)
		acc := events.TimePtr(at)
		add(events.Event{Type: events.TypeAccepted, ID: id, At: at, Source: "ingress", AcceptedAt: acc, Client: "booking"})
		attempt := 1
		if i%10 == 0 {
			for ; attempt < 3; attempt++ {
				add(events.Event{Type: events.TypeAttempt, ID: id, At: at, Source: "forwarder", AcceptedAt: acc, Attempt: attempt, DurationMS: events.Ms(30 * time.Millisecond), Status: 500, Error: "backend answered 500 Internal Server Error", Outcome: "retry"},
					events.Event{Type: events.TypeRetryScheduled, ID: id, At: at, Source: "forwarder", AcceptedAt: acc, Attempt: attempt, Tier: "catering.registrations.retry.1s", Due: acc})
			}
		}
		add(events.Event{Type: events.TypeAttempt, ID: id, At: at, Source: "forwarder", AcceptedAt: acc, Attempt: attempt, DurationMS: events.Ms(12 * time.Millisecond), Status: 200, Outcome: "delivered"},
			events.Event{Type: events.TypeDelivered, ID: id, At: at, Source: "forwarder", AcceptedAt: acc, Attempt: attempt})
	}
	if _, err := x.Apply(batch); err != nil {
		b.Fatal(err)
	}
	buildTook := time.Since(built)
	st, _ := os.Stat(path)

	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		id := fmt.Sprintf("0193a6c4-%08d-7b21-9d3e-2f4c5b6a7d8e", rand.IntN(n))
		start := time.Now()
		r, ok, err := x.Registration(id)
		lat = append(lat, time.Since(start))
		if err != nil || !ok || r.Status != events.StatusDelivered {
			b.Fatalf("%s: %v %v %s", id, ok, err, r.Status)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(n), "registrations")
	b.ReportMetric(float64(nevents), "events")
	b.ReportMetric(float64(st.Size())/float64(1<<20), "index-MiB")
	b.ReportMetric(buildTook.Seconds(), "build-s")
}

// BenchmarkApply measures the index's write path as the ingress runs it in
// steady operation: batches as Consume makes them at ~4,000 registrations/s
// (50 ms: 200 registrations), each with the accepted events of 200 new
// registrations (messages of 20, as the ingress's emitter batches them) and
// the attempt and delivered events of 200 others, half of them accepted in
// the batch before (messages of 10 deliveries). One op is one registration's
// three events; the index starts with RELAY_BENCH_PREFILL registrations
// (default 200,000) so that its B-tree has some depth.
func BenchmarkApply(b *testing.B) {
	prefill := 200_000
	if v := os.Getenv("RELAY_BENCH_PREFILL"); v != "" {
		prefill, _ = strconv.Atoi(v)
	}
	x, err := index.Open(filepath.Join(b.TempDir(), "index.db"), index.Queues{Main: "q", Dead: "q.dead"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	t0 := time.Now().Add(-time.Hour)
	id := func(i int) string { return fmt.Sprintf("0193a6c4-%08d-7b21-9d3e-2f4c5b6a7d8e", i) }
	var off int64
	msg := func(evs []events.Event) index.Record {
		off++
		return index.Record{Offset: off, Body: events.Message(evs).Body}
	}
	const perBatch = 200
	batch := func(k int) []index.Record {
		var recs []index.Record
		var evs []events.Event
		for i := k * perBatch; i < (k+1)*perBatch; i++ {
			at := t0.Add(time.Duration(i) * 250 * time.Microsecond)
			evs = append(evs, events.Event{Type: events.TypeAccepted, ID: id(i), At: at, Source: "ingress", AcceptedAt: events.TimePtr(at), Client: "anonymous"})
			if len(evs) == 20 {
				recs, evs = append(recs, msg(evs)), nil
			}
		}
		for i := k*perBatch - perBatch/2; i < (k+1)*perBatch-perBatch/2; i++ {
			if i < 0 {
				continue
			}
			acc := events.TimePtr(t0.Add(time.Duration(i) * 250 * time.Microsecond))
			at := acc.Add(12 * time.Millisecond)
			evs = append(evs,
				events.Event{Type: events.TypeAttempt, ID: id(i), At: at, Source: "forwarder", AcceptedAt: acc, Attempt: 1, DurationMS: events.Ms(3 * time.Millisecond), Status: 200, Outcome: "delivered"},
				events.Event{Type: events.TypeDelivered, ID: id(i), At: at, Source: "forwarder", AcceptedAt: acc, Attempt: 1})
			if len(evs) == 20 {
				recs, evs = append(recs, msg(evs)), nil
			}
		}
		return recs
	}
	k := 0
	for ; k*perBatch < prefill; k++ {
		if _, err := x.Apply(batch(k)); err != nil {
			b.Fatal(err)
		}
	}
	batches := make([][]index.Record, 0, b.N/perBatch+1)
	for n := 0; n < b.N; n += perBatch {
		batches = append(batches, batch(k+len(batches)))
	}
	b.ResetTimer()
	for _, recs := range batches {
		if _, err := x.Apply(recs); err != nil {
			b.Fatal(err)
		}
	}
}
