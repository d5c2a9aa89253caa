package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/topology"
)

// Names of the metrics Queues exports.
const (
	QueueMessages  = "relay_queue_messages"
	QueueConsumers = "relay_queue_consumers"
)

// Queue kinds, the kind label: dashboards select by kind, not by names that
// depend on TOPOLOGY_PREFIX and the retry schedule.
const (
	KindMain  = "main"
	KindRetry = "retry"
	KindDead  = "dead"
)

// Queues is a prometheus.Collector of the ready messages and consumers of
// every queue of a topology: relay_queue_messages{queue,kind} and
// relay_queue_consumers{queue,kind}. Collect serves the values of the last
// poll; Run, called once for the service's lifetime, polls. It is safe for
// concurrent use.
type Queues struct {
	queues              []queueRef
	interval            time.Duration
	messages, consumers *prometheus.Desc

	mu       sync.Mutex
	conn     *amqp.Connection // attached by the current broker session; nil between sessions
	attached chan struct{}    // wakes Run for a poll as soon as a connection is attached
	stats    []queueStat      // the last poll's; nil while no connection is attached
}

type queueRef struct{ name, kind string }

type queueStat struct {
	queueRef
	messages, consumers int
}

// NewQueues returns a collector of topo's queues that polls every interval.
// With interval 0 it is off: Run returns at once and it exports nothing.
func NewQueues(topo *topology.Topology, interval time.Duration) *Queues {
	refs := []queueRef{{topo.Queue, KindMain}}
	for _, tier := range topo.Tiers() {
		refs = append(refs, queueRef{tier.Queue, KindRetry})
	}
	refs = append(refs, queueRef{topo.DeadQueue, KindDead})
	labels := []string{"queue", "kind"}
	return &Queues{
		queues:    refs,
		interval:  interval,
		messages:  prometheus.NewDesc(QueueMessages, "Messages ready for delivery in the queue, as of the last poll (QUEUE_METRICS_INTERVAL).", labels, nil),
		consumers: prometheus.NewDesc(QueueConsumers, "Consumers of the queue, as of the last poll (QUEUE_METRICS_INTERVAL).", labels, nil),
		attached:  make(chan struct{}, 1),
	}
}

// Attach makes Run poll over conn, at once and then every interval, until
// Detach. The broker session calls it once the topology is declared.
func (q *Queues) Attach(conn *amqp.Connection) {
	q.mu.Lock()
	q.conn = conn
	q.mu.Unlock()
	select {
	case q.attached <- struct{}{}:
	default: // a poll is due anyway
	}
}

// Detach stops polling and forgets the values: numbers nobody refreshes
// would look current. It does not wait for a poll in progress, which ends
// with an error when the session's connection closes.
func (q *Queues) Detach() {
	q.mu.Lock()
	q.conn = nil
	q.stats = nil
	q.mu.Unlock()
}

// Run polls until ctx ends. It opens one channel per connection for its
// passive declarations, because a declaration of a missing queue closes the
// channel it runs on, and the service's other channels must not pay for that.
func (q *Queues) Run(ctx context.Context) {
	if q.interval <= 0 {
		return
	}
	tick := time.NewTicker(q.interval)
	defer tick.Stop()
	var (
		ch     *amqp.Channel
		chConn *amqp.Connection // the connection ch belongs to
	)
	for {
		select {
		case <-ctx.Done():
			// ch dies with its connection, which the session closes; closing
			// it here could wait on a connection the broker has blocked.
			return
		case <-tick.C:
		case <-q.attached:
		}
		q.mu.Lock()
		conn := q.conn
		q.mu.Unlock()
		if conn != chConn {
			ch, chConn = nil, conn
		}
		if conn == nil {
			continue
		}
		var stats []queueStat
		ch, stats = q.poll(conn, ch)
		q.mu.Lock()
		if q.conn == conn { // not detached meanwhile
			q.stats = stats
		}
		q.mu.Unlock()
	}
}

// poll inspects every queue over ch, opening a new channel on conn when ch
// is nil or was closed by a failed declaration. A queue that cannot be
// inspected is left out. It returns the channel to use next time.
func (q *Queues) poll(conn *amqp.Connection, ch *amqp.Channel) (*amqp.Channel, []queueStat) {
	stats := make([]queueStat, 0, len(q.queues))
	for _, ref := range q.queues {
		if ch == nil || ch.IsClosed() {
			var err error
			if ch, err = conn.Channel(); err != nil {
				return nil, stats // the connection is going; the session ends soon
			}
		}
		s, err := ch.QueueDeclarePassive(ref.name, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, nil)
		if err != nil {
			ch = nil // the broker closed it (404), or the connection is gone
			continue
		}
		stats = append(stats, queueStat{queueRef: ref, messages: s.Messages, consumers: s.Consumers})
	}
	return ch, stats
}

// Describe implements prometheus.Collector.
func (q *Queues) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.messages
	ch <- q.consumers
}

// Collect implements prometheus.Collector. It never waits on the broker.
func (q *Queues) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	stats := q.stats
	q.mu.Unlock()
	for _, s := range stats {
		ch <- prometheus.MustNewConstMetric(q.messages, prometheus.GaugeValue, float64(s.messages), s.name, s.kind)
		ch <- prometheus.MustNewConstMetric(q.consumers, prometheus.GaugeValue, float64(s.consumers), s.name, s.kind)
	}
}
