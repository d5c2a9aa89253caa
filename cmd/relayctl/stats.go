package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/brokeradmin"
)

// managementTimeout bounds one management API request: stats must not hang
// on an API that accepts connections but does not answer.
const managementTimeout = 3 * time.Second

// queueStats is one row of stats, and its machine output. The fields only
// the management API knows are null without it.
type queueStats struct {
	Name        string   `json:"name"`
	Role        string   `json:"role"`            // main, retry or dead
	Delay       string   `json:"delay,omitempty"` // a retry tier's
	Exists      bool     `json:"exists"`
	Ready       int      `json:"ready"`
	Consumers   int      `json:"consumers"`
	Unacked     *int     `json:"unacked"`
	PublishRate *float64 `json:"publish_rate"` // messages/s
	DeliverRate *float64 `json:"deliver_rate"` // messages/s, deliveries and gets
}

type statsJSON struct {
	Queues     []queueStats `json:"queues"`
	Management struct {
		URL       string `json:"url"`
		Reachable bool   `json:"reachable"`
		Error     string `json:"error,omitempty"`
	} `json:"management"`
}

func (a *app) stats(args []string) int {
	pos, code, ok := a.parse(a.flags(), args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageError("takes no arguments")
	}
	s, conn, code := a.connect()
	if conn == nil {
		return code
	}
	defer conn.Close()

	var out statsJSON
	rows := []queueStats{{Name: s.topo.Queue, Role: "main"}}
	for _, tier := range s.topo.Tiers() {
		rows = append(rows, queueStats{Name: tier.Queue, Role: "retry", Delay: tier.Delay.String()})
	}
	rows = append(rows, queueStats{Name: s.topo.DeadQueue, Role: "dead"})
	var missing []string
	for i := range rows {
		if err := inspect(conn, &rows[i]); err != nil {
			var amqpErr *amqp.Error
			if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
				return a.fail(err)
			}
			missing = append(missing, rows[i].Name)
		}
	}

	mgmt, err := newManagement(s.managementURL, s.amqpURL, s.brokerTLS)
	out.Management.URL = redactHTTP(s.managementURL)
	if out.Management.URL == "" && err == nil {
		out.Management.URL = mgmt.api.String()
	}
	if err == nil {
		for i := range rows {
			if err = mgmt.fill(a.ctx, &rows[i]); err != nil {
				break // one failure says it for all: do not wait out the timeout per queue
			}
		}
	}
	if err != nil {
		out.Management.Error = err.Error()
		fmt.Fprintf(a.stderr, "rates: management API not reachable at %s (%s); showing depths only\n", safe(out.Management.URL), safe(err.Error()))
	} else {
		out.Management.Reachable = true
	}
	out.Queues = rows

	if a.json {
		a.printJSON(out)
	} else {
		t := newTable(a.stdout, "QUEUE", "ROLE", "READY", "UNACKED", "CONSUMERS", "PUBLISH/S", "DELIVER/S")
		for _, r := range rows {
			role := r.Role
			if r.Delay != "" {
				role += " " + r.Delay
			}
			ready, consumers := strconv.Itoa(r.Ready), strconv.Itoa(r.Consumers)
			if !r.Exists {
				ready, consumers = "missing", "-"
			}
			t.row(r.Name, role, ready, optInt(r.Unacked), consumers, optRate(r.PublishRate), optRate(r.DeliverRate))
		}
		t.flush()
	}
	if len(missing) > 0 {
		return a.fail(fmt.Errorf("no such queue: %s\n%s", strings.Join(missing, ", "), notFoundHint))
	}
	return exitOK
}

// inspect fills r's depth and consumers from a passive declare, on a channel
// of its own: the broker closes the channel when the queue does not exist.
func inspect(conn *amqp.Connection, r *queueStats) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(r.Name, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, nil)
	if err != nil {
		return fmt.Errorf("inspect queue %q: %w", r.Name, err)
	}
	r.Exists, r.Ready, r.Consumers = true, q.Messages, q.Consumers
	return nil
}

func optInt(n *int) string {
	if n == nil {
		return "-"
	}
	return strconv.Itoa(*n)
}

func optRate(f *float64) string {
	if f == nil {
		return "-"
	}
	return strconv.FormatFloat(*f, 'f', 1, 64)
}

// management reads queue details from the RabbitMQ management API.
type management struct{ api *brokeradmin.Client }

// newManagement targets rawURL as the user of amqpURL, unless rawURL names a
// user of its own.
func newManagement(rawURL, amqpURL string, tlsCfg *tls.Config) (*management, error) {
	api, err := brokeradmin.New(amqpURL, rawURL)
	if err != nil {
		return nil, fmt.Errorf("RABBITMQ_MANAGEMENT_URL: %w", err)
	}
	api.UseTLS(tlsCfg)
	return &management{api: api}, nil
}

// apiQueue is the part of GET /api/queues/<vhost>/<name> that stats shows.
type apiQueue struct {
	Unacked      int `json:"messages_unacknowledged"`
	MessageStats struct {
		Publish    struct{ Rate float64 } `json:"publish_details"`
		DeliverGet struct{ Rate float64 } `json:"deliver_get_details"`
	} `json:"message_stats"`
}

// fill adds the management API's figures to r. A queue the API does not know
// yet (404: created a moment ago) keeps its figures unknown; any other
// failure is an error.
func (m *management) fill(ctx context.Context, r *queueStats) error {
	ctx, cancel := context.WithTimeout(ctx, managementTimeout)
	defer cancel()
	var q apiQueue
	if err := m.api.GetQueue(ctx, r.Name, &q); err != nil {
		if errors.Is(err, brokeradmin.ErrNotFound) {
			return nil
		}
		return err
	}
	publish, deliver := q.MessageStats.Publish.Rate, q.MessageStats.DeliverGet.Rate
	r.Unacked, r.PublishRate, r.DeliverRate = &q.Unacked, &publish, &deliver
	return nil
}
