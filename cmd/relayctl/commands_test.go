package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
)

// cli runs relayctl against a topology of the test's own, on the real broker.
type cli struct {
	t    *testing.T
	env  map[string]string
	conn *amqp.Connection
	topo *topology.Topology
}

// noManagement is a management URL where nothing answers (the plugin is off
// on the test machines; a developer's compose broker has it on).
const noManagement = "http://127.0.0.1:1"

func newCLI(t *testing.T) *cli {
	cfg := brokertest.WithEvents(brokertest.Config(t)) // redrive and purge publish events
	conn := brokertest.Dial(t)
	topo := brokertest.Declare(t, conn, cfg)
	return &cli{t: t, conn: conn, topo: topo, env: map[string]string{
		"AMQP_URL":                brokertest.URL(),
		"RABBITMQ_MANAGEMENT_URL": noManagement,
		"TOPOLOGY_PREFIX":         cfg.Prefix,
		"MAX_DELIVERY_ATTEMPTS":   strconv.Itoa(cfg.MaxAttempts),
		"RETRY_INITIAL_INTERVAL":  cfg.RetryInitial.String(),
		"RETRY_MULTIPLIER":        strconv.FormatFloat(cfg.RetryMultiplier, 'g', -1, 64),
		"RETRY_MAX_INTERVAL":      cfg.RetryMax.String(),
		"QUEUE_DELIVERY_LIMIT":    strconv.Itoa(cfg.DeliveryLimit),
	}}
}

func (c *cli) run(args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	var out, errs bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return c.env[k] }, &out, &errs)
	return code, out.String(), errs.String()
}

// runJSON runs args with --json, wants exit code want, and decodes stdout into v.
func (c *cli) runJSON(v any, want int, args ...string) {
	c.t.Helper()
	code, stdout, stderr := c.run(append([]string{"--json"}, args...)...)
	if code != want {
		c.t.Fatalf("relayctl --json %s: exit %d, want %d; stderr: %s", strings.Join(args, " "), code, want, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		c.t.Fatalf("relayctl --json %s: stdout is not JSON (%v):\n%s", strings.Join(args, " "), err, stdout)
	}
}

type dead struct {
	id, reason string
	attempts   int
	lastError  string
	body       string     // default: a small JSON object
	headers    amqp.Table // added to the dead-letter headers
	deadAt     time.Time  // default: 90 minutes ago
}

// bury dead-letters each message the way the forwarder does.
func (c *cli) bury(letters ...dead) {
	c.t.Helper()
	pub := broker.NewPublisher(1)
	if err := pub.Attach(c.conn); err != nil {
		c.t.Fatal(err)
	}
	defer pub.Detach()
	for _, l := range letters {
		died := l.deadAt
		if died.IsZero() {
			died = time.Now().Add(-90 * time.Minute)
		}
		body := l.body
		if body == "" {
			body = fmt.Sprintf(`{"passengerId":%q,"meals":["veg"]}`, l.id)
		}
		msg := envelope.New(l.id, []byte(body), died.Add(-time.Minute))
		d := amqp.Delivery{MessageId: msg.MessageId, ContentType: msg.ContentType, Timestamp: msg.Timestamp, Headers: msg.Headers, Body: msg.Body}
		if l.lastError == "" {
			l.lastError = "catering returned 503"
		}
		dl := envelope.Dead(d, envelope.Attempt{Number: l.attempts, At: died, Status: 503, Err: l.lastError}, l.reason, died)
		maps.Copy(dl.Headers, l.headers)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := pub.Publish(ctx, c.topo.DeadExchange, "", dl)
		cancel()
		if err != nil {
			c.t.Fatalf("bury %s: %v", l.id, err)
		}
	}
}

func (c *cli) depth(queue string) int { return brokertest.Depth(c.t, c.conn, queue) }

func maxed(id string) dead { return dead{id: id, reason: envelope.ReasonMaxAttempts, attempts: 4} }
func refused(id string) dead {
	return dead{id: id, reason: envelope.ReasonNonRetryable, attempts: 1, lastError: "catering returned 422"}
}

func TestStats_DepthsWhenTheManagementAPIIsUnreachable(t *testing.T) {
	c := newCLI(t)
	c.bury(maxed("a"), maxed("b"))

	code, stdout, stderr := c.run("stats")
	if code != exitOK {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	for _, q := range c.topo.QueueNames() {
		if !strings.Contains(stdout, q) {
			t.Errorf("stats does not list %s:\n%s", q, stdout)
		}
	}
	deadRow := lineWith(stdout, c.topo.DeadQueue)
	if f := strings.Fields(deadRow); len(f) < 4 || f[2] != "2" || f[3] != "-" {
		t.Errorf("dead queue row %q: want 2 ready, unacked unknown", deadRow)
	}
	note := "rates: management API not reachable at " + noManagement
	if strings.Count(stderr, note) != 1 {
		t.Errorf("stderr should say %q exactly once, got:\n%s", note, stderr)
	}

	var out statsJSON
	c.runJSON(&out, exitOK, "stats")
	if out.Management.Reachable || out.Management.URL != noManagement || out.Management.Error == "" {
		t.Errorf("management %+v, want unreachable with the error", out.Management)
	}
	if len(out.Queues) != len(c.topo.QueueNames()) {
		t.Fatalf("%d queues in JSON, want %d", len(out.Queues), len(c.topo.QueueNames()))
	}
	last := out.Queues[len(out.Queues)-1]
	if last.Name != c.topo.DeadQueue || last.Role != "dead" || last.Ready != 2 || !last.Exists || last.Unacked != nil {
		t.Errorf("dead queue in JSON: %+v", last)
	}
	if out.Queues[1].Role != "retry" || out.Queues[1].Delay != "100ms" {
		t.Errorf("first tier in JSON: %+v", out.Queues[1])
	}
}

// The management API's figures, as a fake of GET /api/queues/<vhost>/<name>
// serves them, with the credentials of AMQP_URL.
func TestStats_RatesFromTheManagementAPI(t *testing.T) {
	c := newCLI(t)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if user != "guest" || pass != "guest" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		name, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/queues/%2F/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"name":%q,"messages_ready":3,"messages_unacknowledged":7,"consumers":2,
			"message_stats":{"publish_details":{"rate":12.5},"deliver_get_details":{"rate":11.25}}}`, name)
	}))
	defer api.Close()
	c.env["RABBITMQ_MANAGEMENT_URL"] = api.URL + "/"

	code, stdout, stderr := c.run("stats")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	if f := strings.Fields(lineWith(stdout, c.topo.Queue+" ")); len(f) != 7 || f[3] != "7" || f[5] != "12.5" || f[6] != "11.2" {
		t.Errorf("main queue row %q: want unacked 7, publish 12.5/s, deliver 11.2/s", f)
	}
	var out statsJSON
	c.runJSON(&out, exitOK, "stats")
	q := out.Queues[0]
	if !out.Management.Reachable || q.Unacked == nil || *q.Unacked != 7 || *q.PublishRate != 12.5 || *q.DeliverRate != 11.25 {
		t.Errorf("JSON %+v, main queue %+v", out.Management, q)
	}

	// A user in RABBITMQ_MANAGEMENT_URL overrides AMQP_URL's; a refusal still shows the depths.
	c.env["RABBITMQ_MANAGEMENT_URL"] = strings.Replace(api.URL, "http://", "http://guest:wrong@", 1)
	code, stdout, stderr = c.run("stats")
	if code != exitOK || !strings.Contains(stdout, c.topo.DeadQueue) || strings.Contains(stderr, "wrong") ||
		!strings.Contains(stderr, `rates: management API not reachable at http://guest:xxxxx@`) || !strings.Contains(stderr, `user "guest" refused (401)`) {
		t.Errorf("refused management credentials: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

func TestStats_MissingQueuesFail(t *testing.T) {
	c := newCLI(t)
	c.env["TOPOLOGY_PREFIX"] = brokertest.Prefix(t) // declared by nobody
	code, stdout, stderr := c.run("stats")
	if code != exitFailure || !strings.Contains(stdout, "missing") || !strings.Contains(stderr, "no such queue") ||
		!strings.Contains(stderr, "TOPOLOGY_PREFIX") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if code, _, stderr := c.run("dead", "list"); code != exitFailure || !strings.Contains(stderr, "NOT_FOUND") {
		t.Errorf("dead list on a missing queue: exit %d, stderr %q", code, stderr)
	}
}

func TestDeadList(t *testing.T) {
	c := newCLI(t)
	long := "Post \"http://catering/api\": " + strings.Repeat("very long error ", 10)
	c.bury(maxed("m1"), refused("n1"), dead{id: "m2", reason: envelope.ReasonMaxAttempts, attempts: 4, lastError: long})

	code, stdout, stderr := c.run("dead", "list")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("want header, 3 letters and a summary, got:\n%s", stdout)
	}
	for _, col := range []string{"ID", "REASON", "ATTEMPTS", "LAST STATUS", "LAST ERROR", "AGE"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	if f := strings.Fields(lines[2]); f[0] != "n1" || f[1] != "non-retryable" || f[2] != "1" || f[4] != "503" || f[len(f)-1] != "1h30m" {
		t.Errorf("row n1: %q", lines[2])
	}
	if strings.Contains(lines[3], long) || !strings.Contains(lines[3], "…") {
		t.Errorf("long error not truncated: %q", lines[3])
	}
	if !strings.Contains(lines[4], "3 listed; 3 dead letters in "+c.topo.DeadQueue) {
		t.Errorf("summary %q", lines[4])
	}

	code, stdout, _ = c.run("dead", "list", "--reason", "max-attempts", "--limit", "1")
	if code != exitOK || !strings.Contains(stdout, "m1") || strings.Contains(stdout, "m2") || !strings.Contains(stdout, "stopped at --limit 1") {
		t.Errorf("--reason --limit: exit %d\n%s", code, stdout)
	}

	var letters []letterJSON
	c.runJSON(&letters, exitOK, "dead", "list", "--reason", "max-attempts")
	if len(letters) != 2 || letters[0].ID != "m1" || letters[1].ID != "m2" {
		t.Fatalf("JSON letters %+v", letters)
	}
	l := letters[1]
	if l.Reason != envelope.ReasonMaxAttempts || l.Attempts != 4 || l.LastStatus != 503 || l.LastError != long ||
		l.AgeSeconds < 5400 || l.DeadAt == nil || l.Headers[envelope.HeaderReason] != envelope.ReasonMaxAttempts {
		t.Errorf("JSON letter %+v", l)
	}
	var body map[string]any
	if err := json.Unmarshal(l.Body, &body); err != nil || body["passengerId"] != "m2" {
		t.Errorf("JSON body %s: want the body itself", l.Body)
	}

	c.run("dead", "purge", "--all", "--yes")
	if code, stdout, _ := c.run("dead", "list"); code != exitOK || !strings.Contains(stdout, "no dead letters in") {
		t.Errorf("empty list: exit %d, %q", code, stdout)
	}
}

// Listing takes every letter and puts it back: twenty lists later all five
// are still there, byte for byte.
func TestDeadList_TwentyTimesLosesNothing(t *testing.T) {
	c := newCLI(t)
	want := []string{"a", "b", "c", "d", "e"}
	for _, id := range want {
		c.bury(maxed(id))
	}
	var first []letterJSON
	c.runJSON(&first, exitOK, "dead", "list")
	for i := range 20 {
		var got []letterJSON
		c.runJSON(&got, exitOK, "dead", "list")
		var ids []string
		for j, l := range got {
			ids = append(ids, l.ID)
			if !bytes.Equal(l.Body, first[j].Body) || !reflect.DeepEqual(l.Headers, first[j].Headers) {
				t.Fatalf("list %d: %s changed: %s %v, was %s %v", i+1, l.ID, l.Body, l.Headers, first[j].Body, first[j].Headers)
			}
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("list %d: %v, want %v", i+1, ids, want)
		}
	}
	if n := c.depth(c.topo.DeadQueue); n != 5 {
		t.Errorf("dead queue holds %d after 20 lists, want 5", n)
	}
}

func TestDeadShow(t *testing.T) {
	c := newCLI(t)
	c.bury(maxed("json-1"), dead{id: "text-1", reason: envelope.ReasonNonRetryable, attempts: 1, body: "not json at all"})

	code, stdout, stderr := c.run("dead", "show", "json-1")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	for _, want := range []string{
		"id:           json-1",
		"reason:       max-attempts",
		"attempts:     4",
		"last error:   catering returned 503",
		"dead since:   ",
		"  " + envelope.HeaderReason + ": max-attempts",
		"body:\n{\n  \"passengerId\": \"json-1\",\n  \"meals\": [\n    \"veg\"\n  ]\n}\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, stdout)
		}
	}
	if _, stdout, _ := c.run("dead", "show", "text-1"); !strings.Contains(stdout, "body:\nnot json at all\n") {
		t.Errorf("a body that is not JSON is printed raw:\n%s", stdout)
	}

	var letters []letterJSON
	c.runJSON(&letters, exitOK, "dead", "show", "text-1")
	if len(letters) != 1 || string(letters[0].Body) != `"not json at all"` {
		t.Errorf("JSON show: %+v", letters)
	}

	code, _, stderr = c.run("dead", "show", "nope")
	if code != exitFailure || !strings.Contains(stderr, `no dead letter with id nope in `+c.topo.DeadQueue) {
		t.Errorf("missing id: exit %d, stderr %q", code, stderr)
	}
	if n := c.depth(c.topo.DeadQueue); n != 2 {
		t.Errorf("dead queue holds %d after show, want 2", n)
	}
}

func TestDeadRedrive(t *testing.T) {
	c := newCLI(t)
	c.bury(maxed("m1"), refused("n1"), maxed("m2"), refused("n2"))

	code, stdout, stderr := c.run("dead", "redrive", "m2", "--rate", "50/s")
	if code != exitOK || stdout != "redriven 1\n" || stderr != "" {
		t.Fatalf("redrive m2: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	d := brokertest.Get(t, c.conn, c.topo.Queue, time.Second)
	m := envelope.Read(d)
	if d.MessageId != "m2" || m.Attempts != 0 || m.RedriveCount != 1 || m.Reason != "" ||
		d.Headers[envelope.HeaderPreviousReason] != envelope.ReasonMaxAttempts || d.Headers[envelope.HeaderPreviousAttempts] != int32(4) {
		t.Errorf("redriven m2: %+v %v", m, d.Headers)
	}

	var res resultJSON
	c.runJSON(&res, exitOK, "dead", "redrive", "--all", "--reason", "non-retryable", "--yes")
	if res.Redriven == nil || *res.Redriven != 2 || res.Matched != 2 || res.Scanned != 3 || len(res.Missing) != 0 {
		t.Errorf("redrive --all --reason non-retryable: %+v", res)
	}
	if main, dead := c.depth(c.topo.Queue), c.depth(c.topo.DeadQueue); main != 2 || dead != 1 {
		t.Errorf("main %d, dead %d; want 2 and m1 left", main, dead)
	}

	code, stdout, stderr = c.run("dead", "redrive", "m1", "gone-1")
	if code != exitFailure || stdout != "redriven 1\n" || !strings.Contains(stderr, "not found: gone-1") {
		t.Errorf("redrive with an unknown id: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := c.depth(c.topo.DeadQueue); n != 0 {
		t.Errorf("dead queue holds %d, want 0", n)
	}
}

// A redrive of every letter is what a tired operator types on the wrong
// cluster: without --yes it only counts, like purge, and moves nothing.
func TestDeadRedrive_AllIsADryRunWithoutYes(t *testing.T) {
	c := newCLI(t)
	c.bury(maxed("m1"), refused("n1"), maxed("m2"))

	code, stdout, stderr := c.run("dead", "redrive", "--all")
	if code != exitUsage || stdout != "" ||
		!strings.Contains(stderr, "would redrive 3 dead letters from "+c.topo.DeadQueue+" to "+c.topo.Queue) || !strings.Contains(stderr, "--yes") {
		t.Errorf("redrive --all without --yes: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var would map[string]int
	c.runJSON(&would, exitUsage, "dead", "redrive", "--all", "--reason", "max-attempts", "--rate", "10/s")
	if len(would) != 1 || would["would_redrive"] != 2 {
		t.Errorf("JSON redrive --all --reason max-attempts without --yes: %v", would)
	}
	if main, dead := c.depth(c.topo.Queue), c.depth(c.topo.DeadQueue); main != 0 || dead != 3 {
		t.Fatalf("a dry run moved letters: main %d, dead %d; want 0, 3", main, dead)
	}

	// Named ids are redriven at once: the operator has looked at them.
	if code, stdout, stderr := c.run("dead", "redrive", "n1"); code != exitOK || stdout != "redriven 1\n" {
		t.Errorf("redrive n1: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, stderr := c.run("dead", "redrive", "--all", "--yes"); code != exitOK || stdout != "redriven 2\n" {
		t.Errorf("redrive --all --yes: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if main, dead := c.depth(c.topo.Queue), c.depth(c.topo.DeadQueue); main != 3 || dead != 0 {
		t.Errorf("after redriving: main %d, dead %d; want 3, 0", main, dead)
	}
}

// A letter is written by strangers: its body and headers by whoever
// published it, its last error by the Catering backend. None of it may reach
// the operator's terminal as a control sequence, in tables, in show, or in
// --json; --json still carries the exact value.
func TestDeadLetters_TerminalControlSequencesNeverReachTheTerminal(t *testing.T) {
	c := newCLI(t)
	const (
		clear     = "\x1b[2J\x1b[H"
		title     = "\x1b]0;owned\x07"
		c1CSI     = "\u009b31m"
		overwrite = "\rreason:       non-retryable"
	)
	evilError := "backend answered 500: " + clear + "db down" + title + overwrite + "\nsecond line"
	c.bury(dead{
		id: "evil-1", reason: envelope.ReasonMaxAttempts, attempts: 4,
		lastError: evilError,
		body:      `{"passengerId":"` + "\\u001b[31m" + `","note":"` + c1CSI + `"}` + "\n" + clear + "tail\x9b",
		headers:   amqp.Table{"x-evil" + title: "value" + clear + overwrite},
	})

	for _, args := range [][]string{{"dead", "list"}, {"dead", "show", "evil-1"}, {"stats"}} {
		code, stdout, stderr := c.run(args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d; stderr: %s", args, code, stderr)
		}
		for stream, out := range map[string]string{"stdout": stdout, "stderr": stderr} {
			if bad := controlIn(out); bad != "" {
				t.Errorf("%v: %s holds %s:\n%q", args, stream, bad, out)
			}
		}
	}

	_, shown, _ := c.run("dead", "show", "evil-1")
	for _, want := range []string{
		"last error:   backend answered 500: db downreason:       non-retryable\n" + showIndent + "second line\n",
		"  x-evil: value",
		"(control characters or invalid UTF-8 removed for the terminal; --json shows the exact bytes)",
		"tail\uFFFD\n",
	} {
		if !strings.Contains(shown, want) {
			t.Errorf("show lacks %q:\n%s", want, shown)
		}
	}
	if strings.Contains(shown, "\nreason:       non-retryable") {
		t.Errorf("the last error printed a line of its own that passes for a field:\n%s", shown)
	}
	_, listed, _ := c.run("dead", "list")
	if row := lineWith(listed, "evil-1"); !strings.Contains(row, "backend answered 500: db down reason: non-retryable") {
		t.Errorf("list row %q: want the error without its control sequences", row)
	}

	code, stdout, stderr := c.run("--json", "dead", "show", "evil-1")
	if code != exitOK {
		t.Fatalf("--json show: exit %d; stderr: %s", code, stderr)
	}
	if bad := controlIn(strings.ReplaceAll(stdout, "\n", "")); bad != "" {
		t.Errorf("--json holds %s raw:\n%q", bad, stdout)
	}
	var letters []letterJSON
	if err := json.Unmarshal([]byte(stdout), &letters); err != nil || len(letters) != 1 {
		t.Fatalf("--json show: %v\n%s", err, stdout)
	}
	if letters[0].LastError != evilError {
		t.Errorf("--json last_error %q, want the exact %q", letters[0].LastError, evilError)
	}
	var body string
	if err := json.Unmarshal(letters[0].Body, &body); err != nil || !strings.Contains(body, clear) || !strings.Contains(body, c1CSI) {
		t.Errorf("--json body %s: want the exact body as a JSON string (%v)", letters[0].Body, err)
	}
}

// controlIn names the first character of s a terminal would act on, or "".
func controlIn(s string) string {
	for _, r := range s {
		if r != '\n' && r != '\t' && (r < 0x20 || (r >= 0x7f && r <= 0x9f)) {
			return fmt.Sprintf("control character %U", r)
		}
	}
	return ""
}

func TestDeadPurge(t *testing.T) {
	c := newCLI(t)
	c.bury(maxed("m1"), refused("n1"), maxed("m2"))

	code, stdout, stderr := c.run("dead", "purge", "--all")
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "would delete 3 dead letters") || !strings.Contains(stderr, "--yes") {
		t.Errorf("purge without --yes: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var would map[string]int
	c.runJSON(&would, exitUsage, "dead", "purge", "--all", "--reason", "max-attempts")
	if would["would_purge"] != 2 {
		t.Errorf("JSON purge without --yes: %v", would)
	}
	if n := c.depth(c.topo.DeadQueue); n != 3 {
		t.Fatalf("purge without --yes deleted: %d left", n)
	}

	if code, stdout, _ := c.run("dead", "purge", "n1", "--yes"); code != exitOK || stdout != "purged 1\n" {
		t.Errorf("purge n1: exit %d, %q", code, stdout)
	}
	var res resultJSON
	c.runJSON(&res, exitOK, "dead", "purge", "--all", "--yes")
	if res.Purged == nil || *res.Purged != 2 {
		t.Errorf("purge --all: %+v", res)
	}
	if main, dead := c.depth(c.topo.Queue), c.depth(c.topo.DeadQueue); main != 0 || dead != 0 {
		t.Errorf("after purging: main %d, dead %d; want 0, 0", main, dead)
	}
}

// lineWith returns the first line of s containing substr.
func lineWith(s, substr string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
