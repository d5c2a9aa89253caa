package deadletter_test

import (
	"context"
	"fmt"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/deadletter"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
)

// Two registrations are dead: one ran out of attempts while the backend was
// down, the backend refused the other. After the outage, the first gets
// another round; the second stays for a person to look at.
func Example() {
	ctx := context.Background()
	conn, err := amqp.Dial(brokertest.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	topo := topology.New(topology.Config{Prefix: fmt.Sprintf("example.deadletter.%d", os.Getpid()), MaxAttempts: 4,
		RetryInitial: time.Second, RetryMultiplier: 5, RetryMax: time.Minute, DeliveryLimit: 100})
	if err := topo.Declare(conn); err != nil {
		fmt.Println(err)
		return
	}
	defer topo.Delete(conn)

	// What the forwarder does after a last attempt.
	pub := broker.NewPublisher(1)
	if err := pub.Attach(conn); err != nil {
		fmt.Println(err)
		return
	}
	now := time.Now()
	for _, dead := range []struct {
		id, reason string
		attempt    envelope.Attempt
	}{
		{"reg-1", envelope.ReasonMaxAttempts, envelope.Attempt{Number: 4, At: now, Status: 503, Err: "service unavailable"}},
		{"reg-2", envelope.ReasonNonRetryable, envelope.Attempt{Number: 1, At: now, Status: 422, Err: "unknown passenger"}},
	} {
		d := amqp.Delivery{MessageId: dead.id, Body: []byte(`{}`)}
		if err := pub.Publish(ctx, topo.DeadExchange, "", envelope.Dead(d, dead.attempt, dead.reason, now)); err != nil {
			fmt.Println(err)
			return
		}
	}
	pub.Detach()

	letters, err := deadletter.List(ctx, conn, topo, deadletter.Filter{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range letters {
		fmt.Println(l.ID, l.Reason, l.Attempts, l.LastStatus, l.LastError)
	}
	res, err := deadletter.Redrive(ctx, conn, topo, deadletter.Filter{Reason: envelope.ReasonMaxAttempts}, 0)
	fmt.Println("redriven", res.Done, err)
	n, _ := deadletter.Count(ctx, conn, topo, deadletter.Filter{})
	fmt.Println("still dead", n)
	// Output:
	// reg-1 max-attempts 4 503 service unavailable
	// reg-2 non-retryable 1 422 unknown passenger
	// redriven 1 <nil>
	// still dead 1
}
