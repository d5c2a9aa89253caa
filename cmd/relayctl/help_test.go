package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// runArgs runs relayctl in-process with env (nil: empty) and returns its exit
// code and output.
func runArgs(env map[string]string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// Every command answers --help, -h and help <command> with its own usage and
// every flag it takes, on stdout, with exit status 0, and never touches the
// broker (none is configured here).
func TestHelp_EveryCommandAnswersHelp(t *testing.T) {
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.name)
		for _, args := range [][]string{
			append(append([]string{}, words...), "--help"),
			append(append([]string{}, words...), "-h"),
			append([]string{"help"}, words...),
			append(append([]string{"--json"}, words...), "--help"),
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, stdout, stderr := runArgs(nil, args...)
				if code != exitOK || stderr != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing on stderr", code, stderr)
				}
				if !strings.HasPrefix(stdout, "Usage: relayctl "+c.name) {
					t.Errorf("stdout does not start with the command's usage:\n%s", stdout)
				}
				for _, f := range commandFlags(c) {
					if !strings.Contains(stdout, "  "+f.synopsis()+" ") {
						t.Errorf("help lacks flag %s:\n%s", f.synopsis(), stdout)
					}
				}
				if !strings.Contains(stdout, "-h, --help") || !strings.Contains(stdout, "Exit status:") {
					t.Errorf("help lacks -h, --help or the exit status:\n%s", stdout)
				}
			})
		}
	}
}

func TestHelp_GroupsAndUnknownTopics(t *testing.T) {
	for _, args := range [][]string{{"dead", "--help"}, {"dead", "-h"}, {"help", "dead"}} {
		code, stdout, stderr := runArgs(nil, args...)
		if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, "Usage: relayctl dead <command>") {
			t.Errorf("%v: exit %d, stderr %q, stdout:\n%s", args, code, stderr, stdout)
		}
		for _, sub := range []string{"dead list", "dead show", "dead redrive", "dead purge"} {
			if !strings.Contains(stdout, sub) {
				t.Errorf("%v: lacks %s", args, sub)
			}
		}
	}
	code, stdout, stderr := runArgs(nil, "help", "dead", "bury")
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, `no command "dead bury"`) {
		t.Errorf("help dead bury: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runArgs(nil, "help")
	if code != exitOK || !strings.Contains(stdout, "completion bash|zsh") || !strings.Contains(stdout, "relayctl help <command>") {
		t.Errorf("help: exit %d:\n%s", code, stdout)
	}
}

// With --json, whatever goes wrong is one line of JSON on stderr, with the
// exit status in it; stdout stays empty (or holds the command's own JSON).
func TestJSONErrors(t *testing.T) {
	unreachable := map[string]string{"AMQP_URL": "amqp://guest:s3cret@127.0.0.1:1/"}
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  string // substring of "error"
		wantCmd  string
	}{
		{"no command", nil, []string{"--json"}, exitUsage, "no command given", ""},
		{"unknown command", nil, []string{"--json", "frobnicate"}, exitUsage, `unknown command "frobnicate"`, ""},
		{"unknown global flag before --json", nil, []string{"--verbose", "--json", "stats"}, exitUsage, `unknown flag "--verbose"`, ""},
		{"group without subcommand", nil, []string{"dead", "--json"}, exitUsage, `unknown command "dead"`, ""},
		{"unknown flag before --json", nil, []string{"dead", "list", "--frob", "--json"}, exitUsage, "flag provided but not defined: -frob", "dead list"},
		{"bad reason", nil, []string{"dead", "list", "--reason", "tired", "--json"}, exitUsage, `--reason "tired": want one of`, "dead list"},
		{"bad time", nil, []string{"--json", "dead", "redrive", "--all", "--since", "yesterday"}, exitUsage, "RFC 3339", "dead redrive"},
		{"since after until", nil, []string{"--json", "dead", "list", "--since", "1h", "--until", "2h"}, exitUsage, "is not before --until", "dead list"},
		{"no selection", nil, []string{"--json", "dead", "purge", "--yes"}, exitUsage, "name the letters", "dead purge"},
		{"bad watch interval", nil, []string{"--json", "stats", "--watch", "1ms"}, exitUsage, "at least 100ms", "stats"},
		{"completion without shell", nil, []string{"--json", "completion"}, exitUsage, "which shell?", "completion"},
		{"completion of an unknown shell", nil, []string{"--json", "completion", "fish"}, exitUsage, `shell "fish"`, "completion"},
		{"bad configuration", map[string]string{"MAX_DELIVERY_ATTEMPTS": "many"}, []string{"--json", "stats"}, exitUsage, "configuration: ", "stats"},
		{"unreachable broker", unreachable, []string{"dead", "list", "--json"}, exitFailure, "connect to amqp://guest:xxxxx@127.0.0.1:1/", "dead list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(tt.env, tt.args...)
			if code != tt.wantCode || stdout != "" {
				t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, tt.wantCode)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Fatalf("stderr is not one line: %q", stderr)
			}
			var got errorJSON
			dec := json.NewDecoder(strings.NewReader(stderr))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("stderr is not an error object (%v): %q", err, stderr)
			}
			if !strings.Contains(got.Error, tt.wantErr) || got.Exit != code || got.Command != tt.wantCmd {
				t.Errorf("error %+v; want error containing %q, exit %d, command %q", got, tt.wantErr, code, tt.wantCmd)
			}
			if strings.Contains(stderr, "s3cret") {
				t.Errorf("stderr leaks the password: %s", stderr)
			}
		})
	}
	// Without --json the same mistakes are text.
	if _, _, stderr := runArgs(nil, "dead", "list", "--frob"); strings.HasPrefix(stderr, "{") {
		t.Errorf("text mode printed JSON: %q", stderr)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-12-04T10:00:00Z", time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), true},
		{"2026-12-04T11:30:00+01:00", time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC), true},
		{"2026-12-04T10:00:00.5Z", time.Date(2026, 12, 4, 10, 0, 0, 5e8, time.UTC), true},
		{"2h", now.Add(-2 * time.Hour), true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"1d12h", now.Add(-36 * time.Hour), true},
		{"0s", now, true},
		{"-2h", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"2026-12-04", time.Time{}, false},
		{"2026-12-04T10:00:00", time.Time{}, false}, // no zone: ambiguous
		{"3x", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseWhen(tt.in, now)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestWatchFlag(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"stats", "--watch", "10ms"}, exitUsage, "at least 100ms"},
		{[]string{"stats", "--watch=10ms"}, exitUsage, "at least 100ms"},
		{[]string{"stats", "--watch", "soon"}, exitUsage, `interval "soon"`},
		{[]string{"stats", "--watch", "1s", "more"}, exitUsage, "takes no arguments"},
		{[]string{"stats", "5s"}, exitUsage, "takes no arguments"},
	}
	for _, tt := range tests {
		code, _, stderr := runArgs(nil, tt.args...)
		if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, tt.wantCode, tt.wantErr)
		}
	}
	for in, want := range map[string]time.Duration{"true": defaultWatchEvery, "5s": 5 * time.Second, "100ms": minWatchEvery} {
		var w watchFlag
		if err := w.Set(in); err != nil || !w.on || w.every != want {
			t.Errorf("Set(%q): %+v, %v; want on every %s", in, w, err, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		done, total int
		elapsed     time.Duration
		want        string
	}{
		{0, 10000, 0, "redriving: 0/10000 letters (0%), ETA -"},
		{1200, 10000, 2 * time.Second, "redriving: 1200/10000 letters (12%), 600/s, ETA 14s"},
		{5, 100, 10 * time.Second, "redriving: 5/100 letters (5%), 0.5/s, ETA 3m10s"},
		{10000, 10000, 20 * time.Second, "redriving: 10000/10000 letters (100%), 500/s, ETA 0.0s"},
		{12000, 10000, time.Second, "redriving: 10000/10000 letters (100%), 10000/s, ETA 0.0s"}, // arrivals never push it past the total
		{-3, 10000, time.Second, "redriving: 0/10000 letters (0%), ETA -"},
		{1, 7200, time.Second, "redriving: 1/7200 letters (0%), 1.0/s, ETA 1h59m"},
	}
	for _, tt := range tests {
		if got := progressLine("redriving", tt.done, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("progressLine(%d, %d, %s) = %q, want %q", tt.done, tt.total, tt.elapsed, got, tt.want)
		}
	}
	if got := progressDone("purging", 3000, 1500*time.Millisecond); got != "purging: 3000 letters gone through in 1.5s (2000/s)" {
		t.Errorf("progressDone = %q", got)
	}
}

// The line is rewritten in place: a shorter line covers the longer one it
// replaces, and a line never wraps on a narrow terminal.
func TestProgress_RewritesInPlace(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, width: 20}
	p.show("0123456789")
	p.show("abc")
	p.show(strings.Repeat("x", 40))
	want := "\r0123456789" + "\rabc       " + "\r" + strings.Repeat("x", 19)
	if out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
	var nilProgress *progress
	nilProgress.finish(3) // no terminal: nothing to do, no panic
}

// Not a terminal, or --json: startProgress shows nothing and needs no broker.
func TestProgress_OffWithoutATerminal(t *testing.T) {
	a := &app{stderr: &bytes.Buffer{}}
	if p := a.startProgress(nil, "q", "redriving"); p != nil {
		t.Errorf("progress on a buffer: %+v", p)
	}
}
