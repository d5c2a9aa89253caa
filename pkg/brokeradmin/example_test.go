package brokeradmin_test

import (
	"context"
	"fmt"

	"github.com/railco/relay/pkg/brokeradmin"
)

// Bound a queue with a policy, which RabbitMQ applies to the running queue at
// once: no redeclaration.
func ExampleClient_PutPolicy() {
	api, err := brokeradmin.New("amqp://guest:guest@localhost:5672/", "") // http://localhost:15672
	if err != nil {
		fmt.Println(err)
		return
	}
	err = api.PutPolicy(context.Background(), "orders-limits", brokeradmin.Policy{
		Pattern:    `^orders$`,
		ApplyTo:    "queues",
		Priority:   100,
		Definition: map[string]any{"max-length": 100000, "overflow": "reject-publish"},
	})
	if err != nil {
		fmt.Println(err)
	}
}
