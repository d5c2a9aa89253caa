package flood

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Open holds the connections open after their one request, and Alive tells
// the ones the server closed from the ones it keeps.
func TestOpen_HoldsConnectionsAndAliveSeesServerCloses(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	idle := make(chan net.Conn, 100)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateIdle {
			idle <- c
		}
	}
	srv.Start()
	defer srv.Close()

	const n = 20
	f, res, err := Open(context.Background(), Options{
		Addr: srv.Listener.Addr().String(), Conns: n, Dialers: 4,
		Request: "GET / HTTP/1.1\r\nHost: t\r\n\r\n", Timeout: 5 * time.Second,
	})
	defer f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != n || res.Answers[http.StatusOK] != n || len(res.Errors) != 0 {
		t.Fatalf("result %+v, want %d opened and answered 200", res, n)
	}
	// The server marks each idle once it has answered; close 5 of them.
	var closed []net.Conn
	for range n {
		select {
		case c := <-idle:
			if len(closed) < 5 {
				closed = append(closed, c)
				c.Close()
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the server did not mark every connection idle")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.Alive() != n-5 {
		if time.Now().After(deadline) {
			t.Fatalf("Alive() = %d, want %d", f.Alive(), n-5)
		}
		time.Sleep(10 * time.Millisecond) // the closes reach the client asynchronously
	}
}

func TestRaiseOpenFiles(t *testing.T) {
	if err := RaiseOpenFiles(16); err != nil {
		t.Fatal(err)
	}
	if err := RaiseOpenFiles(1 << 40); err == nil {
		t.Fatal("no error for a need above any hard limit")
	}
}
