package deadletter_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/deadletter"
)

// tenThousand are the ids of the benchmarks' dead letters.
var tenThousand = func() []string {
	out := make([]string, 10_000)
	for i := range out {
		out[i] = fmt.Sprintf("bench-%05d", i)
	}
	return out
}()

// BenchmarkRedrive10k redrives 10,000 dead letters to the main queue, each
// confirmed before its letter is acked, and reports letters per second.
//
//	go test -run '^$' -bench Redrive10k -benchtime 3x ./deadletter/
func BenchmarkRedrive10k(b *testing.B) {
	conn := brokertest.Dial(b)
	topo := brokertest.Declare(b, conn, brokertest.Config(b))
	letters := maxAttempts(tenThousand...)
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		bury(b, conn, topo, letters...)
		b.StartTimer()
		start := time.Now()
		res, err := deadletter.Redrive(context.Background(), conn, topo, deadletter.Filter{}, 0)
		elapsed += time.Since(start)
		if err != nil || res.Done != len(letters) {
			b.Fatalf("Redrive = %+v, %v", res, err)
		}
		b.StopTimer()
		drain(b, conn, topo.Queue)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*len(letters))/elapsed.Seconds(), "msgs/s")
}

// BenchmarkList10k browses 10,000 dead letters (all taken and requeued) to
// list the last one: the cost of a scan.
func BenchmarkList10k(b *testing.B) {
	conn := brokertest.Dial(b)
	topo := brokertest.Declare(b, conn, brokertest.Config(b))
	bury(b, conn, topo, maxAttempts(tenThousand...)...)
	filter := deadletter.Filter{IDs: []string{"not-there"}}
	var elapsed time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := deadletter.List(context.Background(), conn, topo, filter); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(b.N*len(tenThousand))/elapsed.Seconds(), "msgs/s")
}
