package broker

import (
	"net"
	"sync"
	"time"
)

// CombineWrites wraps dial so that the connections it makes combine
// concurrent writes into one system call.
//
// amqp091-go flushes its buffer, one write(2), after every publish and every
// ack, while holding the connection's send lock. On loopback or a LAN that
// write is most of a publish's CPU: the kernel runs the whole TCP path, the
// receiver's side included, once per message. Behind CombineWrites a Write
// only appends to a buffer and returns, and one goroutine writes whatever has
// gathered meanwhile: under load the frames of many publishes and acks go
// out in one system call (profiles in docs/BENCHMARKS.md), and at a trickle
// each still goes out at once.
//
// Nothing about delivery guarantees changes: a publish counts only once the
// broker confirmed it, and an ack that never reached the socket leaves the
// message with the broker, which delivers it again. Write order is kept. A
// failed write closes the connection, so its reader, and with it the
// amqp.Connection, fails as with any lost connection, and every later Write
// returns the error. Once maxPending bytes wait behind the batch the socket
// is taking (itself at most that, plus one Write), Write blocks until the
// socket takes them, as an unbuffered write would (a connection the broker
// blocks in a resource alarm stops being read, and the buffer must not grow
// meanwhile).
func CombineWrites(dial func(network, addr string) (net.Conn, error)) func(network, addr string) (net.Conn, error) {
	return func(network, addr string) (net.Conn, error) {
		conn, err := dial(network, addr)
		if err != nil {
			return nil, err
		}
		return newCombiningConn(conn), nil
	}
}

// maxPending bounds the bytes waiting for the socket: a few hundred publishes.
const maxPending = 256 << 10

type combiningConn struct {
	net.Conn

	mu      sync.Mutex
	room    sync.Cond // signalled when pending shrinks or err is set
	pending []byte    // written by callers, not yet handed to the socket
	spare   []byte    // the last batch's buffer, reused
	writing bool      // a flush goroutine runs
	err     error     // the first write error; sticky
}

func newCombiningConn(conn net.Conn) *combiningConn {
	c := &combiningConn{Conn: conn}
	c.room.L = &c.mu
	return c
}

// Write appends p for the flush goroutine and returns; it blocks only while
// maxPending bytes are waiting already.
func (c *combiningConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && len(c.pending) >= maxPending {
		c.room.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.pending = append(c.pending, p...)
	if !c.writing {
		c.writing = true
		go c.flush()
	}
	return len(p), nil
}

// flush writes what is pending, batch after batch, until nothing is.
func (c *combiningConn) flush() {
	c.mu.Lock()
	for len(c.pending) > 0 && c.err == nil {
		batch := c.pending
		c.pending = c.spare[:0]
		c.room.Broadcast()
		c.mu.Unlock()
		_, err := c.Conn.Write(batch)
		c.mu.Lock()
		if cap(batch) <= maxPending*2 {
			c.spare = batch[:0]
		}
		if err != nil {
			c.err = err
			c.room.Broadcast()
			// The reader then fails too, and the amqp.Connection with it.
			_ = c.Conn.Close()
		}
	}
	c.writing = false
	c.room.Broadcast() // Close may wait for it
	c.mu.Unlock()
}

// closeFlush bounds how long Close waits for pending bytes to reach the
// socket: the amqp library closes right after writing its last frame (a
// close-ok), which should go out, but a connection the broker no longer reads
// must not hold Close up.
const closeFlush = 200 * time.Millisecond

// Close writes what is pending (for closeFlush at most) and closes the
// connection.
func (c *combiningConn) Close() error {
	c.mu.Lock()
	if c.writing && c.err == nil {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
		for c.writing {
			c.room.Wait()
		}
	}
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.room.Broadcast()
	c.mu.Unlock()
	return c.Conn.Close()
}
