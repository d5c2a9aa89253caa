package config_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/railco/relay/pkg/config"
)

func TestListen_WritesTheBoundAddress(t *testing.T) {
	file := filepath.Join(t.TempDir(), "svc.addr")
	ln, err := config.Listen("127.0.0.1:0", file)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != ln.Addr().String() {
		t.Errorf("address file says %q, listener is on %s", got, ln.Addr())
	}
	conn, err := net.Dial("tcp", string(got))
	if err != nil {
		t.Fatalf("dial the written address: %v", err)
	}
	conn.Close()
}

func TestListen_UnwritableFileClosesTheListener(t *testing.T) {
	_, err := config.Listen("127.0.0.1:0", filepath.Join(t.TempDir(), "missing-dir", "svc.addr"))
	if err == nil {
		t.Fatal("Listen succeeded with an unwritable address file")
	}
}
