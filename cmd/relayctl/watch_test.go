package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
)

// watchTimeout bounds how long a test waits for refreshes every 100ms.
const watchTimeout = 10 * time.Second

// On a pipe, stats --watch prints table after table, a blank line between
// them, until Ctrl-C, which ends it with exit status 0.
func TestStatsWatch_PipedTablesUntilCtrlC(t *testing.T) {
	c := newCLI(t)
	c.bury(maxed("a"), maxed("b"))
	cmd := c.command(buildRelayctl(t), "stats", "--watch", "100ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	var reading sync.WaitGroup
	reading.Go(func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	})
	defer reading.Wait()

	// Read two refreshes: a header, the table, a blank line, a header.
	var got []string
	headers := 0
	deadline := time.After(watchTimeout)
	for headers < 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("relayctl stopped before two refreshes:\n%s\nstderr: %s", strings.Join(got, "\n"), stderr.String())
			}
			got = append(got, l)
			if strings.HasPrefix(l, "relayctl stats, every 100ms: ") {
				headers++
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("no two refreshes within %s:\n%s", watchTimeout, strings.Join(got, "\n"))
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for range lines { // drain until relayctl closes stdout
	}
	if code := exitCode(t, cmd.Wait()); code != exitOK {
		t.Errorf("exit %d after Ctrl-C, want 0; stderr: %s", code, stderr.String())
	}

	if len(got) < 3 || got[len(got)-2] != "" {
		t.Errorf("no blank line between the refreshes:\n%s", strings.Join(got, "\n"))
	}
	first := strings.Join(got[:len(got)-1], "\n")
	if row := lineWith(first, c.topo.DeadQueue); len(strings.Fields(row)) < 3 || strings.Fields(row)[2] != "2" {
		t.Errorf("dead queue row %q in the first refresh:\n%s", row, first)
	}
	if strings.Contains(strings.Join(got, "\n"), clearScreen) {
		t.Errorf("cleared the screen on a pipe")
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %q; want nothing (the rates note is part of each refresh)", stderr.String())
	}
}

// On a terminal each refresh clears the screen first.
func TestStatsWatch_ClearsTheScreenOnATerminal(t *testing.T) {
	c := newCLI(t)
	r := startPTY(t, c.command(buildRelayctl(t), "stats", "--watch", "100ms"))
	brokertest.Eventually(t, watchTimeout, "two refreshes on the terminal", func() bool {
		return strings.Count(r.output(), clearScreen) >= 2
	})
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code, shown := r.wait(t)
	if code != exitOK {
		t.Errorf("exit %d after Ctrl-C, want 0:\n%q", code, shown)
	}
	frames := strings.Split(shown, clearScreen)[1:]
	if !strings.Contains(frames[0], c.topo.DeadQueue) || !strings.HasPrefix(frames[0], "relayctl stats, every 100ms: ") {
		t.Errorf("first refresh:\n%q", frames[0])
	}
}

// cancelAfter cancels a context once the lines written reach n.
type cancelAfter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (w *cancelAfter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Count(w.buf.Bytes(), []byte("\n")) >= w.n {
		w.cancel()
	}
	return len(p), nil
}

// With --json each refresh is a JSON object on a line of its own; failures
// (here: queues nobody declared) are reported in the refresh, and watching
// goes on until the context ends, with exit status 0.
func TestStatsWatch_JSONLinesAndFailuresInTheRefresh(t *testing.T) {
	c := newCLI(t)
	c.bury(maxed("a"))
	for _, missing := range []bool{false, true} {
		if missing {
			c.env["TOPOLOGY_PREFIX"] = brokertest.Prefix(t) // declared by nobody
		}
		ctx, cancel := context.WithTimeout(context.Background(), watchTimeout)
		out := &cancelAfter{n: 3, cancel: cancel}
		var stderr bytes.Buffer
		code := run(ctx, []string{"--json", "stats", "--watch", "100ms"}, func(k string) string { return c.env[k] }, out, &stderr)
		deadlineHit := ctx.Err() == context.DeadlineExceeded
		cancel()
		if code != exitOK || deadlineHit || stderr.Len() != 0 {
			t.Fatalf("missing %v: exit %d, deadline hit %v, stderr %q", missing, code, deadlineHit, stderr.String())
		}
		lines := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
		if len(lines) < 3 {
			t.Fatalf("missing %v: %d lines, want 3:\n%s", missing, len(lines), out.buf.String())
		}
		var last time.Time
		for i, l := range lines {
			var f watchFrameJSON
			if err := json.Unmarshal([]byte(l), &f); err != nil {
				t.Fatalf("line %d is not a JSON object (%v): %s", i+1, err, l)
			}
			if !f.At.After(last) || len(f.Queues) != len(c.topo.QueueNames()) || f.Management.Reachable {
				t.Errorf("missing %v, line %d: %s", missing, i+1, l)
			}
			last = f.At
			dead := f.Queues[len(f.Queues)-1]
			switch {
			case !missing && (f.Error != "" || dead.Ready != 1):
				t.Errorf("line %d: error %q, dead queue %+v; want no error and 1 letter", i+1, f.Error, dead)
			case missing && (!strings.Contains(f.Error, "no such queue") || dead.Exists):
				t.Errorf("line %d: error %q, dead queue %+v; want it reported missing", i+1, f.Error, dead)
			}
		}
	}
}
