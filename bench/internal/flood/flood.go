// Package flood holds many idle keep-alive connections open against an HTTP
// server, the way a connection flood, or clients whose pools are far larger
// than their traffic, do: each connection sends one request, reads the
// answer, and then sends nothing more.
package flood

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Options describe a flood.
type Options struct {
	Addr  string // host:port
	Conns int    // connections to open
	// Dialers is how many connections are being opened at once.
	Dialers int
	// Request is sent once on each connection, and its answer read; empty
	// sends nothing (the connection stays silent).
	Request string
	// Timeout bounds dialling one connection and reading its answer.
	Timeout time.Duration
}

// Result says what opening the flood gave.
type Result struct {
	Connected int            `json:"connected"` // TCP connections established
	Answers   map[int]int    `json:"answers"`   // the request's status → connections
	Errors    map[string]int `json:"errors"`    // connections that failed, by cause (dial, or no answer)
	Seconds   float64        `json:"seconds"`   // to open them all
}

// Flood is the open connections; Close them.
type Flood struct {
	mu    sync.Mutex
	conns []net.Conn
}

// Open opens o.Conns connections and leaves them open. Connections the server
// refused or closed count in the Result; only an interrupted ctx is an error.
func Open(ctx context.Context, o Options) (*Flood, Result, error) {
	res := Result{Answers: map[int]int{}, Errors: map[string]int{}}
	f := &Flood{conns: make([]net.Conn, 0, o.Conns)}
	start := time.Now()
	jobs := make(chan struct{})
	var mu sync.Mutex // guards res
	var wg sync.WaitGroup
	for range max(o.Dialers, 1) {
		wg.Go(func() {
			d := net.Dialer{Timeout: o.Timeout}
			for range jobs {
				conn, connected, status, err := open(ctx, d, o)
				mu.Lock()
				if connected {
					res.Connected++
				}
				if err != nil {
					res.Errors[cause(err)]++
				} else if o.Request != "" {
					res.Answers[status]++
				}
				mu.Unlock()
				if conn != nil {
					f.mu.Lock()
					f.conns = append(f.conns, conn)
					f.mu.Unlock()
				}
			}
		})
	}
	for range o.Conns {
		if ctx.Err() != nil {
			break
		}
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return f, res, ctx.Err()
}

// open dials one connection and sends o.Request on it. A connection that got
// an answer is kept even when the answer says it will be closed (a 503): the
// server closes it, and Alive does not count it. One without an answer (the
// server closed or reset it) is closed.
func open(ctx context.Context, d net.Dialer, o Options) (conn net.Conn, connected bool, status int, err error) {
	conn, err = d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, false, 0, err
	}
	if o.Request == "" {
		return conn, true, 0, nil
	}
	_ = conn.SetDeadline(time.Now().Add(o.Timeout))
	if _, err := io.WriteString(conn, o.Request); err != nil {
		conn.Close()
		return nil, true, 0, err
	}
	// A small reader: the answer is a few hundred bytes, and thousands of
	// these exist at once.
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil)
	if err != nil {
		conn.Close()
		return nil, true, 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = conn.SetDeadline(time.Time{})
	return conn, true, resp.StatusCode, nil
}

func cause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}

// Alive counts the connections the server has not closed: those with nothing
// to read (a closed one reads end-of-file or a reset at once). It peeks
// without waiting.
func (f *Flood) Alive() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	alive := 0
	var b [1]byte
	for _, c := range f.conns {
		sc, ok := c.(syscall.Conn)
		if !ok {
			continue
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			continue
		}
		open := false
		_ = raw.Read(func(fd uintptr) bool {
			// Nothing to read yet: open. End-of-file (0 bytes) or an
			// error such as a reset: closed by the server.
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			open = errors.Is(err, syscall.EAGAIN) || (err == nil && n > 0)
			return true // done, whatever it read: never wait for readiness
		})
		if open {
			alive++
		}
	}
	return alive
}

// Close closes every connection.
func (f *Flood) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// RaiseOpenFiles raises this process's soft limit of open files to its hard
// limit, and fails when even that is below need. (Go raises it at start-up
// already; this makes the need explicit and the failure clear.)
func RaiseOpenFiles(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
		}
	}
	if lim.Cur < uint64(need) {
		return fmt.Errorf("open files limited to %d, the flood needs %d: raise the hard limit (ulimit -Hn) or lower -flood-conns", lim.Cur, need)
	}
	return nil
}
