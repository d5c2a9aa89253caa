package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/railco/relay/pkg/deadletter"
	"github.com/railco/relay/pkg/envelope"
)

// reasons are the values --reason accepts.
var reasons = []string{envelope.ReasonMaxAttempts, envelope.ReasonNonRetryable, envelope.ReasonRejectedByBroker}

// defaultListLimit keeps a careless `dead list` on a big queue short.
const defaultListLimit = 100

// lastErrorWidth is how much of a letter's last error the list table shows;
// dead show prints all of it.
const lastErrorWidth = 60

func (a *app) reasonFlag(fs *flag.FlagSet) *string {
	return fs.String("reason", "", "only letters dead for this reason")
}

func (a *app) checkReason(reason string) bool {
	return reason == "" || slices.Contains(reasons, reason)
}

func (a *app) deadList(args []string) int {
	fs := a.flags()
	limit := fs.Int("limit", defaultListLimit, "show at most N letters; 0: all")
	reason := a.reasonFlag(fs)
	pos, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) > 0:
		return a.usageError("takes no arguments (dead show <id> prints one letter)")
	case *limit < 0:
		return a.usageError("--limit must not be negative")
	case !a.checkReason(*reason):
		return a.usageError("--reason %q: want one of %s", *reason, strings.Join(reasons, ", "))
	}
	s, conn, code := a.connect()
	if conn == nil {
		return code
	}
	defer conn.Close()

	depth, err := deadletter.Count(a.ctx, conn, s.topo, deadletter.Filter{})
	if err != nil {
		return a.fail(err)
	}
	letters, err := deadletter.List(a.ctx, conn, s.topo, deadletter.Filter{Reason: *reason, Limit: *limit})
	if err != nil {
		return a.fail(err)
	}
	now := time.Now()
	if a.json {
		out := make([]letterJSON, 0, len(letters))
		for _, l := range letters {
			out = append(out, toJSON(l, now))
		}
		return a.printJSON(out)
	}
	if len(letters) == 0 {
		what := "no dead letters"
		if *reason != "" {
			what += " with reason " + *reason
		}
		fmt.Fprintf(a.stdout, "%s in %s\n", what, s.topo.DeadQueue)
		return exitOK
	}
	t := newTable(a.stdout, "ID", "REASON", "ATTEMPTS", "REDRIVES", "LAST STATUS", "LAST ERROR", "AGE")
	for _, l := range letters {
		t.row(l.ID, dash(l.Reason), strconv.Itoa(l.Attempts), strconv.Itoa(l.RedriveCount), status(l.LastStatus),
			dash(oneLine(safe(l.LastError), lastErrorWidth)), age(l.Age(now)))
	}
	t.flush()
	fmt.Fprintf(a.stdout, "%d listed; %d dead letters in %s", len(letters), depth, s.topo.DeadQueue)
	if *limit > 0 && len(letters) == *limit {
		fmt.Fprintf(a.stdout, " (stopped at --limit %d; --limit 0 lists all)", *limit)
	}
	fmt.Fprintln(a.stdout)
	return exitOK
}

func (a *app) deadShow(args []string) int {
	pos, code, ok := a.parse(a.flags(), args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return a.usageError("which letter? dead show <id> (dead list shows the ids)")
	}
	s, conn, code := a.connect()
	if conn == nil {
		return code
	}
	defer conn.Close()

	letters, err := deadletter.Find(a.ctx, conn, s.topo, pos...)
	if err != nil {
		return a.fail(err)
	}
	now := time.Now()
	found := map[string]bool{}
	for _, l := range letters {
		found[l.ID] = true
	}
	var missing []string
	for _, id := range pos {
		if !found[id] && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	if a.json {
		out := make([]letterJSON, 0, len(letters))
		for _, l := range letters {
			out = append(out, toJSON(l, now))
		}
		a.printJSON(out)
	} else {
		for i, l := range letters {
			if i > 0 {
				fmt.Fprintln(a.stdout, "---")
			}
			a.show(l, now)
		}
	}
	if len(missing) > 0 {
		return a.fail(fmt.Errorf("no dead letter with id %s in %s", strings.Join(missing, ", "), s.topo.DeadQueue))
	}
	return exitOK
}

// showIndent lines continuation lines of a value up under its first line.
const showIndent = "              "

// show prints one letter for a person. Every value that came with the letter
// is made terminal-safe (terminalSafe); when that removed anything, a last
// line says so, and --json has the exact bytes.
func (a *app) show(l deadletter.Letter, now time.Time) {
	w := a.stdout
	var altered bool
	line := func(s string) string {
		out, changed := terminalSafe(s, singleLine)
		altered = altered || changed
		return out
	}
	fmt.Fprintf(w, "id:           %s\n", line(l.ID))
	fmt.Fprintf(w, "reason:       %s\n", dash(line(l.Reason)))
	fmt.Fprintf(w, "attempts:     %d\n", l.Attempts)
	fmt.Fprintf(w, "redrives:     %d\n", l.RedriveCount)
	fmt.Fprintf(w, "last status:  %s\n", status(l.LastStatus))
	// The backend's answer may span lines; they stay indented, so none of
	// them can pass for a field of relayctl's.
	lastError, changed := terminalSafe(strings.TrimRight(l.LastError, "\r\n"), multiLine)
	altered = altered || changed
	fmt.Fprintf(w, "last error:   %s\n", dash(strings.ReplaceAll(lastError, "\n", "\n"+showIndent)))
	if l.DeadAt.IsZero() {
		fmt.Fprintf(w, "dead since:   -\n")
	} else {
		fmt.Fprintf(w, "dead since:   %s (%s ago)\n", l.DeadAt.UTC().Format(time.RFC3339), age(l.Age(now)))
	}
	fmt.Fprintf(w, "content type: %s\n", dash(line(l.ContentType)))
	fmt.Fprintln(w, "headers:")
	for _, k := range slices.Sorted(maps.Keys(l.Headers)) {
		fmt.Fprintf(w, "  %s: %s\n", line(k), line(fmt.Sprint(l.Headers[k])))
	}
	fmt.Fprintln(w, "body:")
	body := l.Body
	var pretty bytes.Buffer
	if json.Indent(&pretty, l.Body, "", "  ") == nil {
		body = pretty.Bytes()
	}
	text, changed := terminalSafe(string(body), multiLine)
	altered = altered || changed
	fmt.Fprintln(w, text)
	if altered {
		fmt.Fprintln(w, "(control characters or invalid UTF-8 removed for the terminal; --json shows the exact bytes)")
	}
}

// selection reads the letters a redrive or purge acts on: ids, or --all,
// either narrowed by --reason. Naming none is a usage error, so that no
// command acts on every letter by accident.
type selection struct {
	all    *bool
	reason *string
}

func (a *app) selectionFlags(fs *flag.FlagSet) selection {
	return selection{
		all:    fs.Bool("all", false, "every letter (narrowed by --reason)"),
		reason: a.reasonFlag(fs),
	}
}

func (a *app) filter(sel selection, ids []string) (deadletter.Filter, int, bool) {
	switch {
	case len(ids) == 0 && !*sel.all:
		return deadletter.Filter{}, a.usageError("name the letters: <id>... or --all (narrowed by --reason R)"), false
	case len(ids) > 0 && *sel.all:
		return deadletter.Filter{}, a.usageError("ids and --all exclude each other"), false
	case !a.checkReason(*sel.reason):
		return deadletter.Filter{}, a.usageError("--reason %q: want one of %s", *sel.reason, strings.Join(reasons, ", ")), false
	}
	return deadletter.Filter{IDs: ids, Reason: *sel.reason}, exitOK, true
}

// resultJSON is redrive's and purge's machine output.
type resultJSON struct {
	Scanned  int      `json:"scanned"`
	Matched  int      `json:"matched"`
	Redriven *int     `json:"redriven,omitempty"`
	Purged   *int     `json:"purged,omitempty"`
	Missing  []string `json:"missing"`
	Error    string   `json:"error,omitempty"`
}

// deadRedrive sends letters back to the main queue. Named ids go at once:
// the operator has looked at them. --all (narrowed by --reason or not) only
// counts unless --yes is given, like purge: a redrive of every letter can put
// thousands of messages in front of a backend that has just recovered.
func (a *app) deadRedrive(args []string) int {
	fs := a.flags()
	sel := a.selectionFlags(fs)
	var perSecond rateFlag
	fs.Var(&perSecond, "rate", "at most N letters a second: N/s, N/m or N/h")
	yes := fs.Bool("yes", false, "with --all: really redrive")
	ids, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	f, code, ok := a.filter(sel, ids)
	if !ok {
		return code
	}
	s, conn, code := a.connect()
	if conn == nil {
		return code
	}
	defer conn.Close()

	if *sel.all && !*yes {
		n, err := deadletter.Count(a.ctx, conn, s.topo, f)
		if err != nil {
			return a.fail(err)
		}
		if a.json {
			a.printJSON(map[string]int{"would_redrive": n})
		}
		fmt.Fprintf(a.stderr, "relayctl %s: would redrive %d dead letters from %s to %s; add --yes to do it\n", a.name, n, s.topo.DeadQueue, s.topo.Queue)
		return exitUsage
	}
	res, err := deadletter.Redrive(a.ctx, conn, s.topo, f, float64(perSecond))
	return a.report(res, err, "redriven", &resultJSON{Redriven: &res.Done})
}

func (a *app) deadPurge(args []string) int {
	fs := a.flags()
	sel := a.selectionFlags(fs)
	yes := fs.Bool("yes", false, "really delete")
	ids, code, ok := a.parse(fs, args)
	if !ok {
		return code
	}
	f, code, ok := a.filter(sel, ids)
	if !ok {
		return code
	}
	s, conn, code := a.connect()
	if conn == nil {
		return code
	}
	defer conn.Close()

	if !*yes {
		n, err := deadletter.Count(a.ctx, conn, s.topo, f)
		if err != nil {
			return a.fail(err)
		}
		if a.json {
			a.printJSON(map[string]int{"would_purge": n})
		}
		fmt.Fprintf(a.stderr, "relayctl %s: would delete %d dead letters from %s for good; add --yes to do it\n", a.name, n, s.topo.DeadQueue)
		return exitUsage
	}
	res, err := deadletter.Purge(a.ctx, conn, s.topo, f)
	return a.report(res, err, "purged", &resultJSON{Purged: &res.Done})
}

// report prints what a redrive or purge did ("redriven N") and any error or
// missing ids, and returns the exit code.
func (a *app) report(res deadletter.Result, err error, verb string, out *resultJSON) int {
	if a.json {
		out.Scanned, out.Matched, out.Missing = res.Scanned, res.Matched, res.Missing
		if out.Missing == nil {
			out.Missing = []string{}
		}
		if err != nil {
			out.Error = err.Error()
		}
		a.printJSON(out)
	} else {
		fmt.Fprintf(a.stdout, "%s %d\n", verb, res.Done)
	}
	if err != nil {
		return a.fail(err)
	}
	if len(res.Missing) > 0 {
		return a.fail(fmt.Errorf("not found: %s", strings.Join(res.Missing, ", ")))
	}
	return exitOK
}

// rateFlag is --rate: letters per second, written N/s, N/m, N/h or N.
type rateFlag float64

func (r *rateFlag) String() string { return strconv.FormatFloat(float64(*r), 'g', -1, 64) + "/s" }

func (r *rateFlag) Set(s string) error {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want N/s, N/m or N/h with N a number not below 0 (0: unlimited)")
	}
	per := map[string]float64{"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
	d, ok := per[unit]
	if !ok {
		return fmt.Errorf("unit %q: want s, m or h", unit)
	}
	*r = rateFlag(n / d)
	return nil
}

// letterJSON is a letter in machine output.
type letterJSON struct {
	ID           string          `json:"id"`
	Reason       string          `json:"reason"`
	Attempts     int             `json:"attempts"`
	RedriveCount int             `json:"redrive_count"`
	LastStatus   int             `json:"last_status"`
	LastError    string          `json:"last_error"`
	DeadAt       *time.Time      `json:"dead_at"`
	AgeSeconds   float64         `json:"age_seconds"`
	ContentType  string          `json:"content_type"`
	Headers      map[string]any  `json:"headers"`
	Body         json.RawMessage `json:"body"` // the body itself when it is JSON, else a JSON string
}

func toJSON(l deadletter.Letter, now time.Time) letterJSON {
	out := letterJSON{
		ID: l.ID, Reason: l.Reason, Attempts: l.Attempts, RedriveCount: l.RedriveCount,
		LastStatus: l.LastStatus, LastError: l.LastError, AgeSeconds: l.Age(now).Seconds(),
		ContentType: l.ContentType, Headers: map[string]any(l.Headers), Body: l.Body,
	}
	if out.Headers == nil {
		out.Headers = map[string]any{}
	}
	if !l.DeadAt.IsZero() {
		out.DeadAt = &l.DeadAt
	}
	if !json.Valid(l.Body) || !utf8.Valid(l.Body) { // raw 8-bit bytes (a C1 CSI) must not reach the terminal
		out.Body, _ = json.Marshal(string(l.Body))
	}
	return out
}
