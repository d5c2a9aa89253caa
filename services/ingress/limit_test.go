package main

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
)

// INGRESS_MAX_CONNECTIONS bounds the open client connections (each costs
// memory): one more waits until another closes.
func TestRun_LimitsOpenConnections(t *testing.T) {
	env, _ := baseEnv(t)
	env["INGRESS_MAX_CONNECTIONS"] = "2"
	in := start(t, env)

	dialHealthz := func() (net.Conn, error) {
		conn, err := net.Dial("tcp", in.addr)
		if err != nil {
			return nil, err
		}
		_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			conn.Close()
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			return nil, err
		}
		resp.Body.Close()
		_ = conn.SetDeadline(time.Time{})
		return conn, nil // kept open: keep-alive
	}
	var open []net.Conn
	for range 2 {
		conn, err := dialHealthz()
		if err != nil {
			t.Fatalf("connection within the limit: %v", err)
		}
		open = append(open, conn)
	}
	if conn, err := dialHealthz(); err == nil {
		conn.Close()
		t.Fatal("a third connection was served with INGRESS_MAX_CONNECTIONS=2")
	}
	open[0].Close()
	var err error
	for range 20 { // the server notices the close asynchronously
		var conn net.Conn
		if conn, err = dialHealthz(); err == nil {
			conn.Close()
			break
		}
	}
	if err != nil {
		t.Errorf("no connection served after one closed: %v", err)
	}
	open[1].Close()
}
