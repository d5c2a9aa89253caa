package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Errors and warnings go to stderr. In text mode they are one line,
// "relayctl <command>: <message>", made terminal-safe (messages quote the
// broker, the management API and letters' ids). With --json every line
// relayctl writes to stderr is a JSON object instead, so a script can read
// stderr line by line:
//
//	{"error":"no dead letter with id x in catering.registrations.dead","exit":1,"command":"dead show"}
//	{"warning":"rates: management API not reachable at …","command":"stats"}
//
// "exit" is the exit status relayctl ends with (1 failed, 2 usage). Usage
// errors, bad configuration and the dry runs of purge and redrive --all are
// errors like any other. Help asked for (--help, help <command>) is text on
// stdout in both modes.

// errorJSON is an error on stderr in --json mode.
type errorJSON struct {
	Error   string `json:"error"`
	Exit    int    `json:"exit"`
	Command string `json:"command,omitempty"`
}

// warningJSON is a warning on stderr in --json mode: relayctl goes on.
type warningJSON struct {
	Warning string `json:"warning"`
	Command string `json:"command,omitempty"`
}

// complain reports msg as an error of command (empty: relayctl itself) with
// exit status code; hint, shown in text mode only, follows on a line of its
// own. It returns code.
func (a *app) complain(code int, command, msg, hint string) int {
	if a.json {
		a.stderrJSON(errorJSON{Error: msg, Exit: code, Command: command})
		return code
	}
	prefix := "relayctl"
	if command != "" {
		prefix += " " + command
	}
	safeMsg, _ := terminalSafe(msg, multiLine)
	fmt.Fprintf(a.stderr, "%s: %s\n", prefix, safeMsg)
	if hint != "" {
		fmt.Fprintln(a.stderr, hint)
	}
	return code
}

// warn reports something that did not stop the command.
func (a *app) warn(msg string) {
	if a.json {
		a.stderrJSON(warningJSON{Warning: msg, Command: a.name})
		return
	}
	fmt.Fprintln(a.stderr, safe(msg))
}

// stderrJSON writes v to stderr as one line of JSON, control characters
// escaped (escapeC1), so that it is safe on a terminal too.
func (a *app) stderrJSON(v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<id>" reads better than "\u003cid\u003e"
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(a.stderr, "{\"error\":\"encode JSON: %s\",\"exit\":%d}\n", strings.ReplaceAll(err.Error(), `"`, `'`), exitFailure)
		return
	}
	_, _ = a.stderr.Write(escapeC1(buf.Bytes()))
}

// fail reports err and returns the runtime-error exit code.
func (a *app) fail(err error) int {
	return a.complain(exitFailure, a.name, withHint(err).Error(), "")
}

// usageError reports a misuse of the command and returns the usage exit code.
func (a *app) usageError(format string, args ...any) int {
	hint := "Run 'relayctl help' for usage."
	if a.name != "" {
		hint = fmt.Sprintf("Run 'relayctl help %s' for usage.", a.name)
	}
	msg := fmt.Sprintf(format, args...)
	if !a.json {
		msg = safe(msg) // one line: a value quoted in it cannot start a line of its own
	}
	return a.complain(exitUsage, a.name, msg, hint)
}

// misuse reports a command line relayctl cannot even dispatch (no command,
// an unknown command or global flag) and prints the usage (of group, when
// the line named one) on stderr after it; with --json only the error.
func (a *app) misuse(msg, group string) int {
	a.complain(exitUsage, "", msg, "")
	if a.json {
		return exitUsage
	}
	fmt.Fprintln(a.stderr)
	if group != "" {
		a.groupHelp(a.stderr, group)
	} else {
		a.usage(a.stderr)
	}
	return exitUsage
}
