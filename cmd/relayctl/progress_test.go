package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A redrive long enough to notice shows its progress on an operator's
// terminal, and nothing of it reaches a pipe or --json.
func TestDeadRedrive_ProgressOnATerminalOnly(t *testing.T) {
	c := newCLI(t)
	bin := buildRelayctl(t)
	const n = 12 // at 12/s: about a second, several refreshes
	bury := func() {
		t.Helper()
		for i := range n {
			c.bury(maxed(fmt.Sprintf("p%02d", i)))
		}
	}
	redrive := []string{"dead", "redrive", "--all", "--yes", "--rate", "12/s"}

	bury()
	code, shown := startPTY(t, c.command(bin, redrive...)).wait(t)
	if code != exitOK {
		t.Fatalf("on a terminal: exit %d:\n%q", code, shown)
	}
	if !strings.Contains(shown, "\rredriving: ") || !strings.Contains(shown, fmt.Sprintf("/%d letters (", n)) || !strings.Contains(shown, "/s, ETA ") {
		t.Errorf("no progress line rewritten in place on the terminal:\n%q", shown)
	}
	if !strings.Contains(shown, fmt.Sprintf("redriving: %d letters gone through in ", n)) || !strings.Contains(shown, fmt.Sprintf("redriven %d", n)) {
		t.Errorf("no final line with the totals:\n%q", shown)
	}
	if bad := controlIn(strings.NewReplacer("\r", "", "\n", "").Replace(shown)); bad != "" {
		t.Errorf("the terminal got %s: progress is text and carriage returns only:\n%q", bad, shown)
	}

	bury()
	code, stdout, stderr := runPiped(t, c.command(bin, redrive...))
	if code != exitOK || stdout != fmt.Sprintf("redriven %d\n", n) || stderr != "" {
		t.Errorf("piped: exit %d, stdout %q, stderr %q; want the count only", code, stdout, stderr)
	}

	bury()
	code, shown = startPTY(t, c.command(bin, append([]string{"--json"}, redrive...)...)).wait(t)
	if code != exitOK || strings.Contains(shown, "redriving") || !strings.Contains(shown, fmt.Sprintf(`"redriven": %d`, n)) {
		t.Errorf("--json on a terminal: exit %d, want JSON and no progress:\n%q", code, shown)
	}
	if main := c.depth(c.topo.Queue); main != 3*n {
		t.Errorf("main queue holds %d, want %d", main, 3*n)
	}
}

// A purge of named letters goes through the queue like a redrive; a quick
// one (well under a refresh) shows no progress at all, terminal or not.
func TestDeadPurge_QuickOnesShowNoProgress(t *testing.T) {
	c := newCLI(t)
	bin := buildRelayctl(t)
	c.bury(maxed("q1"), maxed("q2"))
	start := time.Now()
	code, shown := startPTY(t, c.command(bin, "dead", "purge", "q1", "q2", "--yes")).wait(t)
	if code != exitOK || strings.Contains(shown, "purging") || !strings.Contains(shown, "purged 2") {
		t.Errorf("exit %d after %s:\n%q", code, time.Since(start), shown)
	}
}
