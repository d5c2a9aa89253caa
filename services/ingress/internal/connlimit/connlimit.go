// Package connlimit bounds the client connections the ingress holds open,
// without making anyone wait for a slot.
//
// Every open connection costs memory whether it carries requests or not:
// net/http keeps a 4 KiB read buffer, a 4 KiB write buffer and a goroutine
// (8 KiB of stack and more) for each, so a flood of idle keep-alive
// connections, or clients' pools left idle, can exhaust the pod. A listener
// that stops accepting at a limit (netutil.LimitListener) bounds the memory
// but makes new clients, and the kubelet's probes, queue in the kernel's
// accept backlog behind idle connections that nobody uses.
//
// A Listener instead decides at once, in its Accept loop, for every new
// connection over the limit:
//
//  1. If a connection has been idle for at least ReclaimAfter — a keep-alive
//     connection between requests, or a new one that has not sent its request
//     — the one idle the longest is closed and the new one takes its slot.
//  2. Otherwise every slot carries a request, or a connection that was in use
//     a moment ago: the new connection is answered "503 Service Unavailable"
//     with Retry-After as soon as its request starts to arrive, and closed.
//
// Nobody is queued. A client sending requests is never closed while a
// connection idle for longer holds a slot; ReclaimAfter keeps a busy client's
// connection, idle for a moment between two requests, or a new connection
// whose request the server has not read yet, from being closed under it
// (the client would see its connection drop, not an answer): under a true
// overload, new connections get 503s instead.
//
// Invariants:
//   - At most Max connections are open between Accept returning them and
//     their Close (a connection is closed before the one replacing it is
//     admitted).
//   - A connection's slot is taken when Accept returns it and released exactly
//     once, when it is closed — by the server, by a reclaim, or by whoever
//     hijacked it.
//
// Closing an idle keep-alive connection races, as http.Server's own
// IdleTimeout and Shutdown do, with a request the client may be sending on it
// at that moment; such a client sees the connection close unanswered and
// retries (Go's http.Transport does so by itself for requests carrying an
// Idempotency-Key), and relay's Idempotency-Key makes the retry harmless.
//
// The Listener learns which connections are idle from http.Server's ConnState
// hook: set Server.ConnState to Listener.ConnState.
package connlimit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Observer is told about connections, for metrics. It is called from the
// accept loop and from connections' goroutines, ConnectionsOpen with the
// Listener's lock held: implementations must be safe for concurrent use,
// must not block and must not call the Listener.
type Observer interface {
	// ConnectionsOpen reports, after every change, how many connections are
	// open and how many of those are idle (between requests, or new and
	// silent): a new connection may reclaim those idle for ReclaimAfter.
	ConnectionsOpen(open, idle int)
	// ConnectionRefused reports a connection over the limit answered 503 (or
	// closed unanswered) because no open one had been idle for ReclaimAfter.
	ConnectionRefused()
	// ConnectionReclaimed reports an idle connection closed to admit a new one.
	ConnectionReclaimed()
}

type nopObserver struct{}

func (nopObserver) ConnectionsOpen(int, int) {}
func (nopObserver) ConnectionRefused()       {}
func (nopObserver) ConnectionReclaimed()     {}

// Options configure a Listener.
type Options struct {
	// Max is the most connections open at once; 0 means no limit (the
	// connections are still counted for the Observer).
	Max int
	// ReclaimAfter is how long a connection must have been idle (or silent,
	// when new) before it may be closed to admit a new one.
	ReclaimAfter time.Duration
	// RetryAfter is sent in the 503's Retry-After header, in whole seconds.
	RetryAfter time.Duration
	// Observer is told about connections; nil: nobody.
	Observer Observer
	// Log gets at most one line per LogInterval while connections are shed;
	// nil: no log.
	Log *slog.Logger
}

// Refusing a connection: the 503 is written once the client has sent the
// start of its request (an answer that arrives before the request makes HTTP
// clients, Go's among them, drop it as unsolicited and fail or retry), with a
// short deadline (a new socket's send buffer is empty, so the write does not
// wait). Then the connection is half-closed and the rest of the request read
// and dropped for a while before the close: closing a socket with unread data
// makes the kernel send a reset, and a reset can make the client lose the 503
// before it reads it (net/http's rstAvoidanceDelay exists for the same
// reason). A client that sends nothing is closed unanswered.
const (
	refuseWriteTimeout = 500 * time.Millisecond
	// refuseLinger bounds the wait for the request's first bytes, and then
	// the draining; a client that reads the 503 closes sooner.
	refuseLinger = 500 * time.Millisecond
	// refuseDrainMax bounds what is read from a refused connection.
	refuseDrainMax = 64 << 10
	// maxRefusing bounds the refusals in progress (a goroutine each); beyond
	// it a connection is closed unanswered.
	maxRefusing = 256
)

// LogInterval is the least time between two log lines about shedding, so a
// flood cannot flood the log too; the metrics count every connection.
const LogInterval = 5 * time.Second

// Listener is a net.Listener that admits at most Max connections at a time;
// see the package documentation. It is safe for concurrent use.
type Listener struct {
	net.Listener
	max          int
	reclaimAfter time.Duration
	refusal      []byte // the whole 503 response
	obs          Observer
	log          *slog.Logger

	mu       sync.Mutex
	open     int
	idle     idleList              // reclaimable connections, idle the longest first
	refusing map[net.Conn]struct{} // being answered 503
	closed   bool

	refused, reclaimed       atomic.Int64 // since New
	lastLog                  atomic.Int64 // UnixNano of the last log line
	refusedLog, reclaimedLog atomic.Int64 // since the last log line
}

// New wraps ln. Set the http.Server's ConnState to the result's ConnState.
func New(ln net.Listener, o Options) *Listener {
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	l := &Listener{
		Listener:     ln,
		max:          o.Max,
		reclaimAfter: o.ReclaimAfter,
		refusal:      refusal(o.Max, o.RetryAfter),
		obs:          o.Observer,
		log:          o.Log,
		refusing:     map[net.Conn]struct{}{},
	}
	o.Observer.ConnectionsOpen(0, 0)
	return l
}

// refusal is the 503 response: minimal, complete, and shaped like the API's
// other errors ({"error":"..."}).
func refusal(limit int, retryAfter time.Duration) []byte {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{fmt.Sprintf("too many connections: the ingress holds its limit of %d busy connections, retry later", limit)})
	body = append(body, '\n')
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/json\r\n"+
		"Retry-After: %d\r\n"+
		"Connection: close\r\n"+
		"Content-Length: %d\r\n\r\n%s",
		int(retryAfter/time.Second), len(body), body)
}

// Accept returns the next connection admitted; connections refused meanwhile
// are answered in the background. It returns the underlying listener's errors.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.admit(nc); c != nil {
			return c, nil
		}
		l.refuse(nc)
	}
}

// admit takes a slot for nc, closing the connection idle the longest when
// none is free; it returns nil when no connection has been idle for
// ReclaimAfter.
func (l *Listener) admit(nc net.Conn) *Conn {
	for {
		now := time.Now()
		l.mu.Lock()
		if l.max <= 0 || l.open < l.max {
			c := &Conn{Conn: nc, l: l}
			l.open++
			// A new connection has sent nothing yet: reclaimable like an
			// idle one once it stays silent, and the last in line.
			l.idle.pushBack(c, now)
			l.obs.ConnectionsOpen(l.open, l.idle.n)
			l.mu.Unlock()
			return c
		}
		var victim *Conn
		if oldest := l.idle.head; oldest != nil && now.Sub(oldest.since) >= l.reclaimAfter {
			victim = oldest
			l.idle.remove(victim)
			l.obs.ConnectionsOpen(l.open, l.idle.n)
		}
		l.mu.Unlock()
		if victim == nil {
			return nil
		}
		_ = victim.Close() // releases its slot before the loop takes one
		l.reclaimed.Add(1)
		l.obs.ConnectionReclaimed()
		l.shed(&l.reclaimedLog)
	}
}

// refuse answers nc 503 and closes it, in the background.
func (l *Listener) refuse(nc net.Conn) {
	l.refused.Add(1)
	l.obs.ConnectionRefused()
	l.shed(&l.refusedLog)
	l.mu.Lock()
	if l.closed || len(l.refusing) >= maxRefusing {
		l.mu.Unlock()
		_ = nc.Close()
		return
	}
	l.refusing[nc] = struct{}{}
	l.mu.Unlock()
	go func() {
		defer func() {
			_ = nc.Close()
			l.mu.Lock()
			delete(l.refusing, nc)
			l.mu.Unlock()
		}()
		_ = nc.SetReadDeadline(time.Now().Add(refuseLinger))
		if _, err := io.CopyN(io.Discard, nc, 1); err != nil {
			return // silent, or gone
		}
		_ = nc.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		if _, err := nc.Write(l.refusal); err != nil {
			return
		}
		if cw, ok := nc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = nc.SetReadDeadline(time.Now().Add(refuseLinger))
		_, _ = io.Copy(io.Discard, io.LimitReader(nc, refuseDrainMax))
	}()
}

// shed counts a shed connection in counter and logs, at most once per
// LogInterval, what was shed since the last line.
func (l *Listener) shed(counter *atomic.Int64) {
	counter.Add(1)
	if l.log == nil {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(LogInterval) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	refused, reclaimed := l.refusedLog.Swap(0), l.reclaimedLog.Swap(0)
	level := slog.LevelInfo
	if refused > 0 {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "connection limit reached: closing idle connections, refusing new ones with 503 when all are busy",
		"limit", l.max, "reclaimed", reclaimed, "refused", refused, "since", LogInterval.String())
}

// ConnState is the http.Server ConnState hook: it keeps the list of idle
// connections in step with the server.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*Conn)
	if !ok || c.l != l {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch state {
	case http.StateIdle:
		if !c.released {
			l.idle.pushBack(c, now)
		}
	case http.StateActive, http.StateHijacked, http.StateClosed:
		l.idle.remove(c)
	default: // StateNew: admit listed it already
		return
	}
	l.obs.ConnectionsOpen(l.open, l.idle.n)
}

// Close closes the underlying listener and cuts short the refusals in
// progress. Admitted connections stay open: http.Server.Shutdown closes them.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for nc := range l.refusing {
		_ = nc.SetDeadline(time.Now())
	}
	l.mu.Unlock()
	return err
}

// Stats is a snapshot of a Listener's counts.
type Stats struct {
	Open, Idle         int   // now
	Refused, Reclaimed int64 // since New
}

// Stats returns the counts now.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Open: l.open, Idle: l.idle.n, Refused: l.refused.Load(), Reclaimed: l.reclaimed.Load()}
}

func (l *Listener) release(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.idle.remove(c)
	c.released = true
	l.open--
	l.obs.ConnectionsOpen(l.open, l.idle.n)
}

// Conn is an admitted connection; closing it releases its slot.
type Conn struct {
	net.Conn
	l    *Listener
	once sync.Once

	// Guarded by l.mu.
	prev, next *Conn
	inList     bool
	since      time.Time // idle since, while inList
	released   bool
}

// Close closes the connection and releases its slot, the first time only.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// CloseWrite half-closes a TCP connection, as net/http does before closing a
// connection whose request body it did not read.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// idleList is a doubly linked list of connections threaded through them, so
// that adding, removing and finding the oldest are O(1) and allocate nothing.
// Connections are appended as they become idle, so the head is the one idle
// the longest.
type idleList struct {
	head, tail *Conn
	n          int
}

func (q *idleList) pushBack(c *Conn, since time.Time) {
	if c.inList {
		return
	}
	c.prev, c.next, c.inList, c.since = q.tail, nil, true, since
	if q.tail != nil {
		q.tail.next = c
	} else {
		q.head = c
	}
	q.tail = c
	q.n++
}

func (q *idleList) remove(c *Conn) {
	if !c.inList {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		q.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		q.tail = c.prev
	}
	c.prev, c.next, c.inList = nil, nil, false
	q.n--
}
