package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
		{"unknown global flag", []string{"--verbose", "stats"}, exitUsage, "", `unknown flag "--verbose"`},
		{"help", []string{"help"}, exitOK, "dead redrive", ""},
		{"--help", []string{"--help"}, exitOK, "Usage: relayctl", ""},
		{"command --help", []string{"dead", "list", "--help"}, exitOK, "Usage: relayctl", ""},
		{"version", []string{"version"}, exitOK, "relayctl dev", ""},
		{"version --json", []string{"--json", "version"}, exitOK, `"version": "dev"`, ""},
		{"version with an argument", []string{"version", "x"}, exitUsage, "", "takes no arguments"},
		{"unknown command flag", []string{"dead", "list", "--frob"}, exitUsage, "", "flag provided but not defined: -frob"},
		{"negative limit", []string{"dead", "list", "--limit", "-1"}, exitUsage, "", "--limit must not be negative"},
		{"bad reason", []string{"dead", "list", "--reason", "tired"}, exitUsage, "", `--reason "tired": want one of max-attempts, non-retryable, rejected-by-broker`},
		{"list takes no ids", []string{"dead", "list", "abc"}, exitUsage, "", "takes no arguments"},
		{"show without id", []string{"dead", "show"}, exitUsage, "", "which letter?"},
		{"redrive without selection", []string{"dead", "redrive"}, exitUsage, "", "name the letters: <id>... or --all"},
		{"redrive with reason alone", []string{"dead", "redrive", "--reason", "max-attempts"}, exitUsage, "", "name the letters"},
		{"redrive ids and --all", []string{"dead", "redrive", "a", "--all"}, exitUsage, "", "ids and --all exclude each other"},
		{"redrive bad rate", []string{"dead", "redrive", "--all", "--rate", "fast"}, exitUsage, "", `invalid value "fast" for flag -rate`},
		{"redrive bad rate unit", []string{"dead", "redrive", "--all", "--rate", "5/d"}, exitUsage, "", `unit "d"`},
		{"purge without selection", []string{"dead", "purge", "--yes"}, exitUsage, "", "name the letters"},
		{"stats takes no arguments", []string{"stats", "now"}, exitUsage, "", "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, func(string) string { return "" }, &stdout, &stderr)
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
		switch key {
		case "AMQP_URL":
			return "amqp://relay:s3cret@broker.example:5672/"
		case "RABBITMQ_MANAGEMENT_URL":
			return "http://admin:t0psecret@broker.example:15672"
		}
		return ""
	}
	run(context.Background(), []string{"help"}, getenv, &stdout, &bytes.Buffer{})
	out := stdout.String()
	if strings.Contains(out, "s3cret") || strings.Contains(out, "t0psecret") || !strings.Contains(out, "broker.example") {
		t.Errorf("usage should name the broker without its password, got:\n%s", out)
	}
}

func TestRun_BadConfigurationIsAUsageError(t *testing.T) {
	env := map[string]string{"MAX_DELIVERY_ATTEMPTS": "many"}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"stats"}, func(k string) string { return env[k] }, &bytes.Buffer{}, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "MAX_DELIVERY_ATTEMPTS") {
		t.Errorf("exit %d, stderr %q; want 2 naming MAX_DELIVERY_ATTEMPTS", code, stderr.String())
	}
}

func TestRun_UnreachableBrokerFailsWithoutLeakingPassword(t *testing.T) {
	env := map[string]string{"AMQP_URL": "amqp://guest:s3cret@127.0.0.1:1/"}
	for _, args := range [][]string{{"stats"}, {"dead", "list"}, {"dead", "redrive", "--all"}} {
		var stderr bytes.Buffer
		code := run(context.Background(), args, func(k string) string { return env[k] }, &bytes.Buffer{}, &stderr)
		if code != exitFailure || !strings.Contains(stderr.String(), "connect to amqp://guest:xxxxx@127.0.0.1:1/") ||
			strings.Contains(stderr.String(), "s3cret") {
			t.Errorf("%v: exit %d, stderr %q; want 1 naming the broker without its password", args, code, stderr.String())
		}
	}
}

func TestRateFlag(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"10/s", 10, true},
		{"10", 10, true},
		{"0", 0, true},
		{"0.5/s", 0.5, true},
		{"120/m", 2, true},
		{"120/min", 2, true},
		{"7200/h", 2, true},
		{"-1/s", 0, false},
		{"ten/s", 0, false},
		{"5/d", 0, false},
	}
	for _, tt := range tests {
		var r rateFlag
		err := r.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && float64(r) != tt.want) {
			t.Errorf("Set(%q) = %v, %v; want %v, ok %v", tt.in, float64(r), err, tt.want, tt.ok)
		}
	}
}

func TestOneLineAndAge(t *testing.T) {
	if got := oneLine("connection\nrefused   by peer", 60); got != "connection refused by peer" {
		t.Errorf("oneLine = %q", got)
	}
	if got := oneLine(strings.Repeat("é", 70), 60); len([]rune(got)) != 60 || !strings.HasSuffix(got, "…") {
		t.Errorf("oneLine of 70 runes = %q", got)
	}
	for d, want := range map[string]string{"45s": "45s", "12m30s": "12m", "3h20m": "3h20m", "124h": "5d4h", "0s": "-"} {
		if got := age(mustDuration(t, d)); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
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
