package main

import (
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
)

// buryAges dead-letters old1 and old2 three hours ago, mid 90 minutes ago,
// new1 and new2 ten minutes ago, in that order.
func buryAges(c *cli) {
	c.t.Helper()
	now := time.Now()
	at := func(id string, ago time.Duration, reason string) dead {
		return dead{id: id, reason: reason, attempts: 4, deadAt: now.Add(-ago)}
	}
	c.bury(
		at("old1", 3*time.Hour, envelope.ReasonMaxAttempts),
		at("old2", 3*time.Hour, envelope.ReasonNonRetryable),
		at("mid", 90*time.Minute, envelope.ReasonMaxAttempts),
		at("new1", 10*time.Minute, envelope.ReasonMaxAttempts),
		at("new2", 10*time.Minute, envelope.ReasonNonRetryable),
	)
}

func ids(letters []letterJSON) string {
	var out []string
	for _, l := range letters {
		out = append(out, l.ID)
	}
	return strings.Join(out, " ")
}

func TestDeadList_SinceUntilAndLimit(t *testing.T) {
	c := newCLI(t)
	buryAges(c)
	twentyMinutesAgo := time.Now().Add(-20 * time.Minute).UTC().Format(time.RFC3339)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--since", "2h"}, "mid new1 new2"},
		{[]string{"--until", "1h"}, "old1 old2 mid"},
		{[]string{"--since", "2h", "--until", "30m"}, "mid"},
		{[]string{"--since", twentyMinutesAgo}, "new1 new2"},
		{[]string{"--since", "1d"}, "old1 old2 mid new1 new2"},
		{[]string{"--since", "2h", "--limit", "2"}, "mid new1"},
		{[]string{"--until", "1h", "--reason", "max-attempts"}, "old1 mid"},
		{[]string{"--since", "1m"}, ""},
	}
	for _, tt := range tests {
		var letters []letterJSON
		c.runJSON(&letters, exitOK, append([]string{"dead", "list"}, tt.args...)...)
		if got := ids(letters); got != tt.want {
			t.Errorf("dead list %v: %q, want %q", tt.args, got, tt.want)
		}
	}

	code, stdout, _ := c.run("dead", "list", "--since", "2h", "--limit", "2")
	if code != exitOK || !strings.Contains(stdout, "2 listed; 5 dead letters in") || !strings.Contains(stdout, "stopped at --limit 2") {
		t.Errorf("table with --since --limit: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = c.run("dead", "list", "--since", "1m", "--reason", "non-retryable")
	if code != exitOK || !strings.HasPrefix(stdout, "no dead letters with reason non-retryable, dead since ") {
		t.Errorf("empty window: exit %d, %q", code, stdout)
	}
	if n := c.depth(c.topo.DeadQueue); n != 5 {
		t.Errorf("dead queue holds %d after listing, want 5", n)
	}
}

// Filters narrow a redrive; --all with filters is still a dry run without
// --yes; and a window that selects nothing redrives nothing, never all.
func TestDeadRedrive_Filters(t *testing.T) {
	c := newCLI(t)
	buryAges(c)

	code, _, stderr := c.run("dead", "redrive", "--all", "--since", "2h")
	if code != exitUsage || !strings.Contains(stderr, "would redrive 3 dead letters") {
		t.Errorf("--all --since without --yes: exit %d, stderr %q", code, stderr)
	}
	var would map[string]int
	c.runJSON(&would, exitUsage, "dead", "redrive", "--all", "--until", "1h", "--reason", "max-attempts")
	if would["would_redrive"] != 2 {
		t.Errorf("JSON dry run: %v, want 2", would)
	}
	c.runJSON(&would, exitUsage, "dead", "redrive", "--all", "--limit", "4")
	if would["would_redrive"] != 4 {
		t.Errorf("JSON dry run with --limit 4: %v", would)
	}
	if main := c.depth(c.topo.Queue); main != 0 {
		t.Fatalf("a dry run moved %d letters", main)
	}

	var res resultJSON
	c.runJSON(&res, exitOK, "dead", "redrive", "--all", "--since", "1m", "--yes")
	if *res.Redriven != 0 || len(res.Missing) != 0 {
		t.Errorf("empty window: %+v", res)
	}
	if main, dead := c.depth(c.topo.Queue), c.depth(c.topo.DeadQueue); main != 0 || dead != 5 {
		t.Fatalf("an empty window redrove: main %d, dead %d", main, dead)
	}

	code, stdout, stderr := c.run("dead", "redrive", "--all", "--until", "1h", "--limit", "1", "--yes")
	if code != exitOK || stdout != "redriven 1\n" || stderr != "" {
		t.Errorf("--until --limit 1: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if d := redrivenID(t, c); d != "old1" {
		t.Errorf("redriven %q, want old1", d)
	}

	// Named ids are narrowed too; one the window leaves out is not found.
	code, stdout, stderr = c.run("dead", "redrive", "old2", "new1", "--until", "1h")
	if code != exitFailure || stdout != "redriven 1\n" || !strings.Contains(stderr, "not found dead before ") || !strings.HasSuffix(stderr, ": new1\n") {
		t.Errorf("ids with --until: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if d := redrivenID(t, c); d != "old2" {
		t.Errorf("redriven %q, want old2", d)
	}

	c.runJSON(&res, exitOK, "dead", "redrive", "--all", "--since", "2h", "--reason", "non-retryable", "--yes")
	if *res.Redriven != 1 || res.Matched != 1 {
		t.Errorf("--since --reason: %+v", res)
	}
	if d := redrivenID(t, c); d != "new2" {
		t.Errorf("redriven %q, want new2", d)
	}
	var left []letterJSON
	c.runJSON(&left, exitOK, "dead", "list")
	if got := ids(left); got != "mid new1" {
		t.Errorf("left in the dead-letter queue: %q, want mid new1", got)
	}
}

func TestDeadPurge_Filters(t *testing.T) {
	c := newCLI(t)
	buryAges(c)
	code, _, stderr := c.run("dead", "purge", "--all", "--until", "1h")
	if code != exitUsage || !strings.Contains(stderr, "would delete 3 dead letters") {
		t.Errorf("purge --until without --yes: exit %d, stderr %q", code, stderr)
	}
	var res resultJSON
	c.runJSON(&res, exitOK, "dead", "purge", "--all", "--until", "1h", "--yes")
	if *res.Purged != 3 {
		t.Errorf("purge --until 1h: %+v", res)
	}
	var left []letterJSON
	c.runJSON(&left, exitOK, "dead", "list")
	if got := ids(left); got != "new1 new2" {
		t.Errorf("left: %q, want new1 new2", got)
	}
}

// redrivenID takes the next message of the main queue and returns its id.
func redrivenID(t *testing.T, c *cli) string {
	t.Helper()
	return brokertest.Get(t, c.conn, c.topo.Queue, time.Second).MessageId
}
