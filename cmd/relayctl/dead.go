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
)

// defaultListLimit keeps a careless `dead list` on a big queue short.
const defaultListLimit = 100

// lastErrorWidth is how much of a letter's last error the list table shows;
// dead show prints all of it.
const lastErrorWidth = 60

func (a *app) defineDeadList(fs *flag.FlagSet) func([]string) int {
	sf := defineSelect(fs, false, defaultListLimit, "show at most `N` letters; 0: all (default 100)")
	return func(pos []string) int {
		if len(pos) > 0 {
			return a.usageError("takes no arguments (dead show <id> prints one letter)")
		}
		sel, code, ok := a.selection(sf, nil, false)
		if !ok {
			return code
		}
		return a.deadList(sel)
	}
}

func (a *app) deadList(sel selection) int {
	s, conn, code := a.connect()
	if conn == nil {
		return code
	}
	defer conn.Close()

	depth, err := deadletter.Count(a.ctx, conn, s.topo, deadletter.Filter{})
	if err != nil {
		return a.fail(err)
	}
	letters, err := list(a.ctx, conn, s.topo, sel)
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
		if sel.narrowed() {
			what += " " + sel.describe()
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
	if sel.Limit > 0 && len(letters) == sel.Limit {
		fmt.Fprintf(a.stdout, " (stopped at --limit %d; --limit 0 lists all)", sel.Limit)
	}
	fmt.Fprintln(a.stdout)
	return exitOK
}

// describe says what narrows s, for messages: "with reason max-attempts,
// dead since 2026-12-04T10:00:00Z".
func (s selection) describe() string {
	var parts []string
	if s.Reason != "" {
		parts = append(parts, "with reason "+s.Reason)
	}
	switch {
	case !s.since.IsZero() && !s.until.IsZero():
		parts = append(parts, "dead from "+s.since.UTC().Format(time.RFC3339)+" to "+s.until.UTC().Format(time.RFC3339))
	case !s.since.IsZero():
		parts = append(parts, "dead since "+s.since.UTC().Format(time.RFC3339))
	case !s.until.IsZero():
		parts = append(parts, "dead before "+s.until.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}

func (a *app) defineDeadShow(fs *flag.FlagSet) func([]string) int {
	return a.deadShow
}

func (a *app) deadShow(pos []string) int {
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
// the operator has looked at them. --all (narrowed by filters or not) only
// counts unless --yes is given, like purge: a redrive of every letter can put
// thousands of messages in front of a backend that has just recovered.
func (a *app) defineDeadRedrive(fs *flag.FlagSet) func([]string) int {
	sf := defineSelect(fs, true, 0, "redrive at most `N` letters; 0: no limit")
	var perSecond rateFlag
	fs.Var(&perSecond, "rate", "at most N letters a second, written `N/s` (or N/m, N/h); default: unlimited")
	yes := fs.Bool("yes", false, "with --all: really redrive; without it, only say how many letters it would")
	return func(ids []string) int {
		sel, code, ok := a.selection(sf, ids, true)
		if !ok {
			return code
		}
		s, conn, code := a.connect()
		if conn == nil {
			return code
		}
		defer conn.Close()

		if sel.all && !*yes {
			n, err := a.count(conn, s, sel)
			if err != nil {
				return a.fail(err)
			}
			if a.json {
				a.printJSON(map[string]int{"would_redrive": n})
			}
			return a.complain(exitUsage, a.name, fmt.Sprintf("would redrive %d dead letters from %s to %s; add --yes to do it", n, s.topo.DeadQueue, s.topo.Queue), "")
		}
		p, err := a.plan(conn, s, sel)
		if err != nil {
			return a.fail(err)
		}
		var res deadletter.Result
		if !p.none {
			prog := a.startProgress(conn, s.topo.DeadQueue, "redriving")
			res, err = deadletter.Redrive(a.ctx, conn, s.topo, p.filter, float64(perSecond))
			prog.finish(res.Scanned)
		}
		res.Missing = append(p.excluded, res.Missing...)
		return a.report(res, err, sel, "redriven", &resultJSON{Redriven: &res.Done})
	}
}

func (a *app) defineDeadPurge(fs *flag.FlagSet) func([]string) int {
	sf := defineSelect(fs, true, 0, "delete at most `N` letters; 0: no limit")
	yes := fs.Bool("yes", false, "really delete; without it, only say how many letters it would")
	return func(ids []string) int {
		sel, code, ok := a.selection(sf, ids, true)
		if !ok {
			return code
		}
		s, conn, code := a.connect()
		if conn == nil {
			return code
		}
		defer conn.Close()

		if !*yes {
			n, err := a.count(conn, s, sel)
			if err != nil {
				return a.fail(err)
			}
			if a.json {
				a.printJSON(map[string]int{"would_purge": n})
			}
			return a.complain(exitUsage, a.name, fmt.Sprintf("would delete %d dead letters from %s for good; add --yes to do it", n, s.topo.DeadQueue), "")
		}
		p, err := a.plan(conn, s, sel)
		if err != nil {
			return a.fail(err)
		}
		var res deadletter.Result
		if !p.none {
			prog := a.startProgress(conn, s.topo.DeadQueue, "purging")
			res, err = deadletter.Purge(a.ctx, conn, s.topo, p.filter)
			prog.finish(res.Scanned)
		}
		res.Missing = append(p.excluded, res.Missing...)
		return a.report(res, err, sel, "purged", &resultJSON{Purged: &res.Done})
	}
}

// report prints what a redrive or purge did ("redriven N") and any error or
// missing ids, and returns the exit code.
func (a *app) report(res deadletter.Result, err error, sel selection, verb string, out *resultJSON) int {
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
		if sel.narrowed() && len(sel.IDs) > 0 {
			return a.fail(fmt.Errorf("not found %s: %s", sel.describe(), strings.Join(res.Missing, ", ")))
		}
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
