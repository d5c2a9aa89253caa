package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/term"
)

// Progress of a long scan (a redrive or purge of thousands of letters) is
// shown on stderr when stderr is a terminal and --json is off: one line,
// rewritten in place with a carriage return a few times a second, then left
// with the totals when the scan ends. A scan that ends within the first
// refresh shows nothing.
//
// How far a scan has got is read from the broker rather than from package
// deadletter, which reports only at the end: a scan takes the letters with
// basic.get and holds them unacknowledged until it is through, so the
// queue's ready count falls by one for each letter taken, acted on or not.
// The letters gone through are the depth at the start less the ready count
// now, asked for with a passive declare on a channel of the progress's own.
// Letters that arrive meanwhile are not part of the scan (it stops at the
// depth it began with) and can only make the figure lag.

// progressEvery is how often the line is rewritten: often enough to look
// alive, seldom enough not to flicker or load the broker.
const progressEvery = 250 * time.Millisecond

// progress shows one scan's progress; the zero of *progress (nil) shows
// nothing, so callers need not ask whether there is a terminal.
type progress struct {
	w     io.Writer
	width int // of the terminal; 0: unknown
	label string
	total int
	start time.Time

	stop chan struct{}
	done sync.WaitGroup
	mu   sync.Mutex // guards shown, written by the poller and by finish
	// shown is the length of the line on screen, 0 before the first refresh.
	shown int
}

// startProgress starts showing how far a scan of queue has got, if stderr
// is a terminal and --json is off; label names what the scan does
// ("redriving"). Call finish when the scan is over.
func (a *app) startProgress(conn *amqp.Connection, queue, label string) *progress {
	fd, ok := terminalFd(a.stderr)
	if a.json || !ok {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil // progress is a courtesy: the operation reports its own errors
	}
	q, err := ch.QueueDeclarePassive(queue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, nil)
	if err != nil || q.Messages == 0 {
		_ = ch.Close()
		return nil
	}
	width, _, _ := term.GetSize(fd)
	p := &progress{w: a.stderr, width: width, label: label, total: q.Messages, start: time.Now(), stop: make(chan struct{})}
	p.done.Go(func() {
		defer ch.Close()
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			q, err := ch.QueueDeclarePassive(queue, true /* durable */, false /* autoDelete */, false /* exclusive */, false /* noWait */, nil)
			if err != nil {
				return // the channel is gone; the operation will say why
			}
			p.show(progressLine(p.label, p.total-q.Messages, p.total, time.Since(p.start)))
		}
	})
	return p
}

// finish stops the refreshes and, if the line was shown, leaves it with the
// totals: scanned letters were gone through.
func (p *progress) finish(scanned int) {
	if p == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	shown := p.shown
	p.mu.Unlock()
	if shown > 0 {
		p.show(progressDone(p.label, scanned, time.Since(p.start)))
		fmt.Fprintln(p.w)
	}
}

// show rewrites the line: back to its start, the new text, and spaces over
// what is left of a longer old one. Nothing in it came from outside relayctl.
func (p *progress) show(line string) {
	if p.width > 1 && len(line) >= p.width {
		line = line[:p.width-1] // a line that wraps cannot be rewritten with \r
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pad := max(p.shown-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.shown = len(line)
}

// progressLine is the line shown while a scan runs: "redriving: 1200/10000
// letters (12%), 480/s, ETA 18s".
func progressLine(label string, done, total int, elapsed time.Duration) string {
	done = min(max(done, 0), total)
	line := fmt.Sprintf("%s: %d/%d letters (%d%%)", label, done, total, done*100/max(total, 1))
	if done == 0 || elapsed <= 0 {
		return line + ", ETA -"
	}
	rate := float64(done) / elapsed.Seconds()
	eta := time.Duration(float64(total-done) / rate * float64(time.Second))
	return line + fmt.Sprintf(", %s/s, ETA %s", rateText(rate), shortDuration(eta))
}

// progressDone is the line left when a scan is over.
func progressDone(label string, scanned int, elapsed time.Duration) string {
	line := fmt.Sprintf("%s: %d letters gone through in %s", label, scanned, shortDuration(elapsed))
	if s := elapsed.Seconds(); s > 0 && scanned > 0 {
		line += fmt.Sprintf(" (%s/s)", rateText(float64(scanned)/s))
	}
	return line
}

func rateText(perSecond float64) string {
	if perSecond < 10 {
		return fmt.Sprintf("%.1f", perSecond)
	}
	return fmt.Sprintf("%.0f", perSecond)
}

// shortDuration prints d to the second (tenths under ten seconds): 4.2s, 18s, 3m05s, 1h02m.
func shortDuration(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// terminalFd returns w's file descriptor and whether it is a terminal.
func terminalFd(w io.Writer) (int, bool) {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	_, ok := terminalFd(w)
	return ok
}
