package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestCombineWrites_KeepsEveryWriterInOrder(t *testing.T) {
	client, server := tcpPair(t)
	c := newCombiningConn(client)
	const writers, each = 16, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// One frame per Write, as the amqp library writes them.
				if _, err := fmt.Fprintf(c, "%02d:%04d\n", w, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(server, writers*each*8))
		got <- b
	}()
	wg.Wait()
	b := <-got
	next := make([]int, writers)
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var w, i int
		if _, err := fmt.Sscanf(string(line), "%02d:%04d", &w, &i); err != nil {
			t.Fatalf("torn frame %q: %v", line, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: frame %d after %d", w, i, next[w]-1)
		}
		next[w]++
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d frames arrived, want %d", w, n, each)
		}
	}
}

func TestCombineWrites_AFailedWriteClosesAndSticks(t *testing.T) {
	client, server := tcpPair(t)
	c := newCombiningConn(client)
	server.Close()
	_ = client.(*net.TCPConn).SetLinger(0)
	// Writes to a peer that is gone fail within a few round trips.
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write(make([]byte, 64<<10))
	}
	if err == nil {
		t.Fatal("writes to a closed peer never failed")
	}
	if _, again := c.Write([]byte("x")); again == nil {
		t.Error("a write after a failed one succeeded")
	}
	if _, rerr := client.Read(make([]byte, 1)); rerr == nil {
		t.Error("the connection stays open after a failed write: its reader would never notice")
	}
}

func TestCombineWrites_BoundsWhatWaits(t *testing.T) {
	// net.Pipe has no buffer: nothing drains until the other end reads.
	client, server := net.Pipe()
	defer server.Close()
	c := newCombiningConn(client)
	blocked := make(chan error, 1)
	// What it takes without a reader: the batch the flush goroutine is
	// writing (up to maxPending plus one chunk, if it starts late) and as
	// much again waiting behind it. Three times maxPending is more.
	const total = 3 * maxPending
	go func() {
		chunk := make([]byte, 32<<10)
		for range total / len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				blocked <- err
				return
			}
		}
		blocked <- nil
	}()
	select {
	case err := <-blocked:
		t.Fatalf("wrote three times maxPending to a socket nobody reads (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(server, total)); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestCombineWrites_CloseWritesWhatIsPending(t *testing.T) {
	client, server := tcpPair(t)
	c := newCombiningConn(client)
	want := bytes.Repeat([]byte("close-ok "), 1000)
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(server)
	if !bytes.Equal(got, want) {
		t.Errorf("got %d bytes before the close, want %d", len(got), len(want))
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}
