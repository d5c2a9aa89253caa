package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
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

// Watching: the default refresh, and the shortest one allowed (each
// refresh opens a channel per queue and may ask the management API).
const (
	defaultWatchEvery = 2 * time.Second
	minWatchEvery     = 100 * time.Millisecond
)

// watchFlag is --watch, with an optional interval: --watch, --watch=5s, or
// --watch 5s (the interval then follows as an argument, which package flag
// cannot tell from a positional one; stats takes no other).
type watchFlag struct {
	on    bool
	every time.Duration
}

func (w *watchFlag) String() string {
	if w == nil || !w.on {
		return ""
	}
	return w.every.String()
}

func (w *watchFlag) Set(s string) error {
	switch s {
	case "true":
		w.on, w.every = true, defaultWatchEvery
		return nil
	case "false":
		w.on = false
		return nil
	}
	d, err := parseInterval(s)
	if err != nil {
		return err
	}
	w.on, w.every = true, d
	return nil
}

func (w *watchFlag) IsBoolFlag() bool      { return true } // --watch alone is fine
func (w *watchFlag) optionalValue() string { return "interval" }

func parseInterval(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("interval %q: want a duration such as 2s or 500ms", s)
	}
	if d < minWatchEvery {
		return 0, fmt.Errorf("interval %s: want at least %s", d, minWatchEvery)
	}
	return d, nil
}

func (a *app) defineStats(fs *flag.FlagSet) func([]string) int {
	var watch watchFlag
	fs.Var(&watch, "watch", "refresh the table every `interval` (default 2s) until Ctrl-C")
	return func(pos []string) int {
		if watch.on && len(pos) == 1 {
			d, err := parseInterval(pos[0])
			if err != nil {
				return a.usageError("--watch %v", err)
			}
			watch.every, pos = d, nil
		}
		if len(pos) > 0 {
			return a.usageError("takes no arguments")
		}
		s, conn, code := a.connect()
		if conn == nil {
			return code
		}
		if watch.on {
			return a.watchStats(s, conn, watch.every)
		}
		defer conn.Close()
		return a.stats(s, conn)
	}
}

// stats prints the table once. A missing queue is shown and is a failure.
func (a *app) stats(s settings, conn *amqp.Connection) int {
	mgmt, mgmtErr := newManagement(s.managementURL, s.amqpURL, s.brokerTLS)
	out, missing, err := a.collectStats(s, conn, mgmt, mgmtErr)
	if err != nil {
		return a.fail(err)
	}
	if !out.Management.Reachable {
		a.warn(ratesNote(out))
	}
	if a.json {
		a.printJSON(out)
	} else {
		printStats(a.stdout, out.Queues)
	}
	if len(missing) > 0 {
		return a.fail(fmt.Errorf("no such queue: %s\n%s", strings.Join(missing, ", "), notFoundHint))
	}
	return exitOK
}

// collectStats reads every queue's figures: depths and consumers from the
// broker, the rest from the management API (mgmt, or why there is none).
// missing names the queues that do not exist; err is any other failure.
func (a *app) collectStats(s settings, conn *amqp.Connection, mgmt *management, mgmtErr error) (out statsJSON, missing []string, err error) {
	rows := []queueStats{{Name: s.topo.Queue, Role: "main"}}
	for _, tier := range s.topo.Tiers() {
		rows = append(rows, queueStats{Name: tier.Queue, Role: "retry", Delay: tier.Delay.String()})
	}
	rows = append(rows, queueStats{Name: s.topo.DeadQueue, Role: "dead"})
	for i := range rows {
		if err := inspect(conn, &rows[i]); err != nil {
			var amqpErr *amqp.Error
			if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
				return out, nil, err
			}
			missing = append(missing, rows[i].Name)
		}
	}

	out.Management.URL = redactHTTP(s.managementURL)
	if out.Management.URL == "" && mgmtErr == nil {
		out.Management.URL = mgmt.api.String()
	}
	err = mgmtErr
	if err == nil {
		for i := range rows {
			if err = mgmt.fill(a.ctx, &rows[i]); err != nil {
				break // one failure says it for all: do not wait out the timeout per queue
			}
		}
	}
	if err != nil {
		out.Management.Error = err.Error()
	} else {
		out.Management.Reachable = true
	}
	out.Queues = rows
	return out, missing, nil
}

// ratesNote says why the rates are missing.
func ratesNote(out statsJSON) string {
	return fmt.Sprintf("rates: management API not reachable at %s (%s); showing depths only", out.Management.URL, out.Management.Error)
}

func printStats(w io.Writer, rows []queueStats) {
	t := newTable(w, "QUEUE", "ROLE", "READY", "UNACKED", "CONSUMERS", "PUBLISH/S", "DELIVER/S")
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

// clearScreen moves the cursor home and clears the screen (ECMA-48 CUP, ED).
const clearScreen = "\x1b[H\x1b[2J"

// watchFrameJSON is one refresh of stats --watch --json: one line each.
type watchFrameJSON struct {
	At time.Time `json:"at"`
	statsJSON
	Error string `json:"error,omitempty"`
}

// watchStats refreshes the figures every interval until a.ctx ends (Ctrl-C),
// and returns exitOK then. It owns conn. Failures do not end it: a missing
// queue, an unreachable management API or a lost broker are shown in the
// refresh, and the broker is dialled again at the next one.
func (a *app) watchStats(s settings, conn *amqp.Connection, every time.Duration) int {
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	mgmt, mgmtErr := newManagement(s.managementURL, s.amqpURL, s.brokerTLS)
	clear := !a.json && isTerminal(a.stdout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		var (
			out     statsJSON
			missing []string
			err     error
		)
		if conn == nil || conn.IsClosed() {
			if conn, err = a.dial(s); err != nil {
				conn = nil
			}
		}
		if err == nil {
			out, missing, err = a.collectStats(s, conn, mgmt, mgmtErr)
		}
		if a.ctx.Err() != nil {
			return exitOK // interrupted mid-refresh: what it read is not worth showing
		}
		if err == nil && len(missing) > 0 {
			err = fmt.Errorf("no such queue: %s\n%s", strings.Join(missing, ", "), notFoundHint)
		}
		now := time.Now()
		switch {
		case a.json:
			frame := watchFrameJSON{At: now.UTC(), statsJSON: out}
			if err != nil {
				frame.Error = withHint(err).Error()
			}
			a.printJSONLine(frame)
		default:
			a.printWatchFrame(n, clear, now, every, out, err)
		}
		select {
		case <-a.ctx.Done():
			return exitOK
		case <-tick.C:
		}
	}
}

// printWatchFrame prints one refresh for people: on a terminal over the
// last one, else after it, a blank line between them.
func (a *app) printWatchFrame(n int, clear bool, now time.Time, every time.Duration, out statsJSON, err error) {
	w := a.stdout
	switch {
	case clear:
		fmt.Fprint(w, clearScreen)
	case n > 0:
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "relayctl stats, every %s: %s (Ctrl-C to stop)\n", every, now.Format("2006-01-02 15:04:05"))
	if out.Queues != nil {
		printStats(w, out.Queues)
		if !out.Management.Reachable {
			fmt.Fprintln(w, safe(ratesNote(out)))
		}
	}
	if err != nil {
		msg, _ := terminalSafe(withHint(err).Error(), multiLine)
		fmt.Fprintf(w, "error: %s\n", msg)
	}
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
