package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/deadletter"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/pkg/topology"
)

// reasons are the values --reason accepts.
var reasons = []string{envelope.ReasonMaxAttempts, envelope.ReasonNonRetryable, envelope.ReasonRejectedByBroker, envelope.ReasonInvalidMessage}

// reasonFlag is --reason. Any value parses; run checks it against reasons,
// so that the error names them all.
type reasonFlag string

func (r *reasonFlag) String() string     { return string(*r) }
func (r *reasonFlag) Set(s string) error { *r = reasonFlag(s); return nil }
func (r *reasonFlag) values() []string   { return reasons }

// timeFlag is --since or --until: an RFC 3339 time, or a duration meaning
// that long before now.
type timeFlag struct {
	t   time.Time
	now func() time.Time
}

func (f *timeFlag) String() string {
	if f == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(s string) error {
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	t, err := parseWhen(s, now())
	if err != nil {
		return err
	}
	f.t = t
	return nil
}

// daysPrefix is the days of a duration written 7d or 1d12h, which
// time.ParseDuration does not take.
var daysPrefix = regexp.MustCompile(`^(\d+)d`)

// errWhen says what --since and --until take.
var errWhen = errors.New("want an RFC 3339 time (2026-12-04T10:00:00Z) or a duration ago (90m, 2h, 7d)")

// parseWhen reads an RFC 3339 time, or a duration meaning that long before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errWhen
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	var d time.Duration
	rest := s
	if m := daysPrefix.FindStringSubmatch(s); m != nil {
		days, err := strconv.Atoi(m[1])
		if err == nil && days <= 365*100 {
			d = time.Duration(days) * 24 * time.Hour
			rest = s[len(m[0]):]
		}
	}
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, errWhen
		}
		d += more
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("a duration ago must not be negative")
	}
	return now.Add(-d), nil
}

// selectFlags are the flags that pick letters: ids or --all, narrowed by
// reason, time and count.
type selectFlags struct {
	all          *bool // nil for dead list, which lists all by default
	reason       reasonFlag
	since, until timeFlag
	limit        *int
}

func defineSelect(fs *flag.FlagSet, withAll bool, defaultLimit int, limitUsage string) *selectFlags {
	sf := &selectFlags{}
	if withAll {
		sf.all = fs.Bool("all", false, "every letter, narrowed by the filters")
	}
	fs.Var(&sf.reason, "reason", "only letters dead for reason `R`: "+strings.Join(reasons, ", "))
	fs.Var(&sf.since, "since", "only letters dead at or after `T`: RFC 3339, or a duration ago (2h, 7d)")
	fs.Var(&sf.until, "until", "only letters dead before `T`: RFC 3339, or a duration ago")
	sf.limit = fs.Int("limit", defaultLimit, limitUsage)
	return sf
}

// selection is what a command acts on: the filter deadletter applies
// (ids, reason, limit) and the time window relayctl applies itself.
type selection struct {
	deadletter.Filter
	since, until time.Time
	all          bool
}

// timed reports whether s has a time window.
func (s selection) timed() bool { return !s.since.IsZero() || !s.until.IsZero() }

// narrowed reports whether anything but ids narrows s.
func (s selection) narrowed() bool { return s.Reason != "" || s.timed() }

// inWindow reports whether l died within s's time window.
func (s selection) inWindow(l deadletter.Letter) bool {
	if !s.timed() {
		return true
	}
	if l.DeadAt.IsZero() {
		return false
	}
	return (s.since.IsZero() || !l.DeadAt.Before(s.since)) && (s.until.IsZero() || l.DeadAt.Before(s.until))
}

// selection checks the flags against the ids named and returns what to act
// on. needIDs makes "neither ids nor --all" a usage error, so that no
// command acts on every letter by accident.
func (a *app) selection(sf *selectFlags, ids []string, needIDs bool) (selection, int, bool) {
	all := sf.all != nil && *sf.all
	switch {
	case needIDs && len(ids) == 0 && !all:
		return selection{}, a.usageError("name the letters: <id>... or --all (narrowed by --reason, --since, --until, --limit)"), false
	case len(ids) > 0 && all:
		return selection{}, a.usageError("ids and --all exclude each other"), false
	case !slices.Contains(append([]string{""}, reasons...), string(sf.reason)):
		return selection{}, a.usageError("--reason %q: want one of %s", string(sf.reason), strings.Join(reasons, ", ")), false
	case *sf.limit < 0:
		return selection{}, a.usageError("--limit must not be negative"), false
	case !sf.since.t.IsZero() && !sf.until.t.IsZero() && !sf.since.t.Before(sf.until.t):
		return selection{}, a.usageError("--since %s is not before --until %s", sf.since.String(), sf.until.String()), false
	}
	return selection{
		Filter: deadletter.Filter{IDs: ids, Reason: string(sf.reason), Limit: *sf.limit},
		since:  sf.since.t, until: sf.until.t, all: all,
	}, exitOK, true
}

// list returns the letters sel selects, oldest first, leaving every letter
// in the queue. A time window is applied here: package deadletter filters by
// id, reason and count only, so with one every letter of reason is read.
func list(ctx context.Context, conn *amqp.Connection, topo *topology.Topology, sel selection) ([]deadletter.Letter, error) {
	if !sel.timed() {
		return deadletter.List(ctx, conn, topo, sel.Filter)
	}
	read := sel.Filter
	read.Limit = 0
	letters, err := deadletter.List(ctx, conn, topo, read)
	if err != nil {
		return nil, err
	}
	out := letters[:0]
	for _, l := range letters {
		if sel.inWindow(l) && (sel.Limit == 0 || len(out) < sel.Limit) {
			out = append(out, l)
		}
	}
	return slices.Clip(out), nil
}

// plan is how a redrive or purge carries out a selection.
type plan struct {
	filter deadletter.Filter // what to hand to deadletter
	none   bool              // nothing selected: do not call deadletter at all
	count  int               // letters selected, when the plan was made by reading them (timed)
	// excluded are the ids named that the time window left out: reported
	// as not found, like ids the reason leaves out.
	excluded []string
}

// plan turns sel into a filter package deadletter applies. Without a time
// window that is sel's own. With one, relayctl reads the letters first,
// keeps those that died within the window, and returns a filter on their
// ids. An empty selection must not become the zero Filter, which selects
// every letter: the plan says none instead.
//
// A letter that arrives between the read and the operation with the id of
// one selected (another death of a redriven letter) is selected too; the
// limit, set to the letters read, bounds how many are acted on.
func (a *app) plan(conn *amqp.Connection, s settings, sel selection) (plan, error) {
	if !sel.timed() {
		return plan{filter: sel.Filter}, nil
	}
	p := a.startProgress(conn, s.topo.DeadQueue, "reading")
	letters, err := list(a.ctx, conn, s.topo, sel)
	p.finish(len(letters))
	if err != nil {
		return plan{}, err
	}
	var ids []string
	for _, l := range letters {
		if !slices.Contains(ids, l.ID) {
			ids = append(ids, l.ID)
		}
	}
	var excluded []string
	for _, id := range sel.IDs {
		if !slices.Contains(ids, id) && !slices.Contains(excluded, id) {
			excluded = append(excluded, id)
		}
	}
	if len(letters) == 0 {
		return plan{none: true, excluded: excluded}, nil
	}
	return plan{
		filter:   deadletter.Filter{IDs: ids, Reason: sel.Reason, Limit: len(letters)},
		count:    len(letters),
		excluded: excluded,
	}, nil
}

// count returns how many letters sel selects, for a dry run.
func (a *app) count(conn *amqp.Connection, s settings, sel selection) (int, error) {
	if sel.timed() {
		p, err := a.plan(conn, s, sel)
		return p.count, err
	}
	return deadletter.Count(a.ctx, conn, s.topo, sel.Filter)
}
