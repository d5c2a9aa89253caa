package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/railco/relay/pkg/events"
)

// defaultIngressURL is where make run serves the ingress.
const defaultIngressURL = "http://127.0.0.1:8290"

// traceTimeout bounds the lookup: the ingress answers from a local index.
const traceTimeout = 10 * time.Second

func (a *app) defineTrace(fs *flag.FlagSet) func([]string) int {
	ingress := fs.String("ingress", "", "the ingress's URL (default RELAY_INGRESS_URL, else "+defaultIngressURL+")")
	return func(pos []string) int {
		if len(pos) != 1 {
			return a.usageError("which registration? trace <id> (the id the ingress answered 202 with)")
		}
		base := *ingress
		if base == "" {
			base = a.getenv("RELAY_INGRESS_URL")
		}
		if base == "" {
			base = defaultIngressURL
		}
		r, err := fetchRegistration(a, base, pos[0], a.getenv("RELAY_API_KEY"))
		if err != nil {
			return a.fail(err)
		}
		if a.json {
			return a.printJSON(r)
		}
		printTimeline(a.stdout, r)
		return exitOK
	}
}

// errUnknownRegistration: the ingress answered 404.
var errUnknownRegistration = errors.New("unknown registration")

func fetchRegistration(a *app, base, id, key string) (events.Registration, error) {
	var r events.Registration
	u, err := url.Parse(strings.TrimRight(base, "/") + "/catering/registrations/" + url.PathEscape(id))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return r, fmt.Errorf("ingress URL %q: want http(s)://host:port", base)
	}
	req, err := http.NewRequestWithContext(a.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return r, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	client := &http.Client{Timeout: traceTimeout}
	res, err := client.Do(req)
	if err != nil {
		return r, fmt.Errorf("ask the ingress: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return r, fmt.Errorf("read the ingress's answer: %w", err)
	}
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return r, fmt.Errorf("%w %s: the ingress at %s knows no such id (never accepted, or older than the event retention)", errUnknownRegistration, id, redactHTTP(base))
	case http.StatusUnauthorized:
		return r, fmt.Errorf("the ingress at %s wants an API key: set RELAY_API_KEY", redactHTTP(base))
	default:
		return r, fmt.Errorf("the ingress at %s answered %s: %s", redactHTTP(base), res.Status, oneLine(string(body), 200))
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("the ingress's answer: %w", err)
	}
	return r, nil
}

// stamp formats a time of the timeline.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }

// printTimeline prints r for a person: a summary, then one line per event.
func printTimeline(w io.Writer, r events.Registration) {
	fmt.Fprintf(w, "registration %s: %s\n", safe(r.ID), strings.ToUpper(r.Status))
	if r.AcceptedAt != nil {
		by := ""
		if r.Client != "" {
			by = " from " + safe(r.Client)
		}
		fmt.Fprintf(w, "  accepted   %s%s\n", stamp(*r.AcceptedAt), by)
	}
	counted := 0
	for _, at := range r.Attempts {
		if !at.Duplicate {
			counted++
		}
	}
	switch {
	case r.DeliveredAt != nil:
		took := ""
		if r.AcceptedAt != nil {
			took = fmt.Sprintf(", %s after acceptance", r.DeliveredAt.Sub(*r.AcceptedAt).Round(time.Millisecond))
		}
		on := fmt.Sprintf("attempt %d", lastAttempt(r))
		if r.Redrives > 0 {
			on += fmt.Sprintf(" after redrive %d", r.Redrives)
		}
		fmt.Fprintf(w, "  delivered  %s (on %s; %d attempts in all%s)\n", stamp(*r.DeliveredAt), on, counted, took)
	case r.Status == events.StatusDead || r.Status == events.StatusPurged:
		at := ""
		if r.DeadLetteredAt != nil {
			at = stamp(*r.DeadLetteredAt) + " "
		}
		fmt.Fprintf(w, "  dead       %s(reason %s, %d attempts)\n", at, dash(safe(r.Reason)), counted)
	case r.NextAttemptAt != nil:
		fmt.Fprintf(w, "  next try   %s\n", stamp(*r.NextAttemptAt))
	}
	if r.Redrives > 0 {
		fmt.Fprintf(w, "  redriven   %d time(s)\n", r.Redrives)
	}
	fmt.Fprintln(w)
	t := newTable(w, "TIME", "EVENT", "DETAIL")
	dup := map[[2]int]int{}
	for _, e := range r.History {
		t.row(stamp(e.At), eventName(e), eventDetail(e, dup))
	}
	t.flush()
}

func lastAttempt(r events.Registration) int {
	if n := len(r.Attempts); n > 0 {
		return r.Attempts[n-1].Attempt
	}
	return 0
}

func eventName(e events.Event) string {
	switch e.Type {
	case events.TypeAttempt, events.TypeHeld:
		name := fmt.Sprintf("%s %d", e.Type, e.Attempt)
		if e.Redrive > 0 {
			name += fmt.Sprintf(" (redrive %d)", e.Redrive)
		}
		return name
	}
	return e.Type
}

// eventDetail says what e did; seen counts attempts by (redrive, number),
// to mark one made again.
func eventDetail(e events.Event, seen map[[2]int]int) string {
	switch e.Type {
	case events.TypeAccepted:
		if e.Client != "" {
			return "by client " + e.Client
		}
		return "stored by the ingress"
	case events.TypeAttempt:
		k := [2]int{e.Redrive, e.Attempt}
		seen[k]++
		var b strings.Builder
		if e.Status != 0 {
			fmt.Fprintf(&b, "HTTP %d", e.Status)
		} else {
			b.WriteString("no answer")
		}
		if e.DurationMS != nil {
			fmt.Fprintf(&b, " in %dms", *e.DurationMS)
		}
		fmt.Fprintf(&b, " → %s", e.Outcome)
		if e.Error != "" {
			fmt.Fprintf(&b, ": %s", oneLine(e.Error, 120))
		}
		switch {
		case seen[k] > 1:
			b.WriteString(" [DUPLICATE: made again after the forwarder stopped before settling it]")
		case e.Redelivered:
			b.WriteString(" [REDELIVERED: a try before it, whose events died with its forwarder, may have reached the backend]")
		}
		return b.String()
	case events.TypeRetryScheduled:
		if e.Due != nil {
			return fmt.Sprintf("waits in %s until %s", e.Tier, stamp(*e.Due))
		}
		return "waits in " + e.Tier
	case events.TypeHeld:
		return "backend unavailable, delivery paused (attempt not counted): " + oneLine(e.Error, 100)
	case events.TypeDelivered:
		return fmt.Sprintf("the backend took it (attempt %d)", e.Attempt)
	case events.TypeDeadLettered:
		return "moved to the dead-letter queue: " + e.Reason
	case events.TypeRedriven:
		return fmt.Sprintf("sent back to the main queue (redrive %d)", e.Redrive)
	case events.TypePurged:
		return "deleted from the dead-letter queue"
	}
	return ""
}
