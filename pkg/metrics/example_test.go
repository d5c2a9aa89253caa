package metrics_test

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/topology"
)

// A service exports queue depths from its own registry: Run polls for the
// service's whole life, and each broker session attaches its connection.
func ExampleQueues() {
	ctx := context.Background()
	topo := topology.New(topology.Config{Prefix: "catering", MaxAttempts: 4, RetryInitial: time.Second,
		RetryMultiplier: 5, RetryMax: 10 * time.Minute, DeliveryLimit: 100})
	reg := metrics.NewRegistry()
	queues := metrics.NewQueues(topo, metrics.DefaultQueueInterval)
	reg.MustRegister(queues)
	go queues.Run(ctx)
	http.Handle("GET /metrics", metrics.Handler(reg))

	d := broker.Dialer{URL: "amqp://guest:guest@localhost:5672/", Name: "example", Log: slog.Default()}
	_ = d.Run(ctx, func(ctx context.Context, conn *amqp.Connection) error {
		if err := topo.Declare(conn); err != nil {
			return err
		}
		queues.Attach(conn)
		defer queues.Detach()
		return broker.Wait(ctx, conn, nil, nil)
	})
}
