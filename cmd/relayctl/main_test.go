package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun_Dispatch(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring; "" means stdout must be empty
		wantStderr string // substring; "" means stderr must be empty
	}{
		{"no command prints usage", nil, exitUsage, "", "Usage: relayctl"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"unknown command prints usage", []string{"frobnicate"}, exitUsage, "", "Usage: relayctl"},
		{"dead without subcommand", []string{"dead"}, exitUsage, "", `unknown command "dead"`},
		{"unknown dead subcommand", []string{"dead", "bury"}, exitUsage, "", `unknown command "dead bury"`},
		{"help", []string{"help"}, exitOK, "dead redrive", ""},
		{"--help", []string{"--help"}, exitOK, "Usage: relayctl", ""},
		{"version", []string{"version"}, exitOK, "relayctl dev", ""},
		{"stats", []string{"stats"}, exitUsage, "", "relayctl stats: not implemented yet"},
		{"dead list", []string{"dead", "list"}, exitUsage, "", "relayctl dead list: not implemented yet"},
		{"dead show", []string{"dead", "show", "abc"}, exitUsage, "", "relayctl dead show: not implemented yet"},
		{"dead redrive", []string{"dead", "redrive", "--all"}, exitUsage, "", "relayctl dead redrive: not implemented yet"},
		{"dead purge", []string{"dead", "purge", "abc"}, exitUsage, "", "relayctl dead purge: not implemented yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, func(string) string { return "" }, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			check(t, "stdout", stdout.String(), tt.wantStdout)
			check(t, "stderr", stderr.String(), tt.wantStderr)
		})
	}
}

func TestRun_UsageRedactsPassword(t *testing.T) {
	var stdout bytes.Buffer
	getenv := func(key string) string {
		if key == "AMQP_URL" {
			return "amqp://relay:s3cret@broker.example:5672/"
		}
		return ""
	}
	run([]string{"help"}, getenv, &stdout, &bytes.Buffer{})
	if out := stdout.String(); strings.Contains(out, "s3cret") || !strings.Contains(out, "broker.example") {
		t.Errorf("usage should name the broker without its password, got:\n%s", out)
	}
}

func check(t *testing.T, stream, got, want string) {
	t.Helper()
	if want == "" {
		if got != "" {
			t.Errorf("%s = %q, want it empty", stream, got)
		}
		return
	}
	if !strings.Contains(got, want) {
		t.Errorf("%s = %q, want it to contain %q", stream, got, want)
	}
}
