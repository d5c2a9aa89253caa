package apikey_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/logtest"

	"github.com/railco/relay/services/ingress/internal/apikey"
)

// logBuffer collects log output while it is written.
type logBuffer = logtest.Buffer

// loads records OnLoad's calls.
type loads struct {
	mu   sync.Mutex
	errs []error
	n    []int
}

func (l *loads) record(n int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n = append(l.n, n)
	l.errs = append(l.errs, err)
}

func (l *loads) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.n)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	// Through a rename, as an operator (or Kubernetes) should, so that a
	// poll never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, content string) (*apikey.File, string, *logBuffer, *loads) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	write(t, path, content)
	logs, ld := &logBuffer{}, &loads{}
	f, err := apikey.Open(path, apikey.Options{Log: slog.New(slog.NewJSONHandler(logs, nil)), OnLoad: ld.record})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return f, path, logs, ld
}

func lookup(f *apikey.File, key string) string {
	name, _ := f.Lookup(key)
	return name
}

func TestOpen_FailsOnAMissingEmptyOrBadFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string // content "<none>": no file
		want          string
	}{
		{"missing", "<none>", "no such file"},
		{"empty", "", "no clients"},
		{"only comments", "# nobody yet\n", "no clients"},
		{"malformed", "railco:" + keyBooking + "\n" + keyMobile + "\n", "line 2: want name:key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if tt.content != "<none>" {
				write(t, path, tt.content)
			}
			f, err := apikey.Open(path, apikey.Options{})
			if err == nil {
				t.Fatalf("Open: %d clients, want an error", f.Current().Len())
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), keyMobile) {
				t.Errorf("error %q: want it to contain %q and no key", err, tt.want)
			}
		})
	}
}

func TestFile_ReloadSwapsTheKeys(t *testing.T) {
	f, path, logs, ld := open(t, "railco:"+keyBooking+"\n")
	write(t, path, "railco:"+keyMobile+"\npartner:"+keyPartner+"\n")
	if err := f.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if lookup(f, keyBooking) != "" || lookup(f, keyMobile) != "railco" || lookup(f, keyPartner) != "partner" {
		t.Error("after Reload the old key still works, or a new one does not")
	}
	if ld.count() != 1 || ld.n[0] != 2 || ld.errs[0] != nil {
		t.Errorf("OnLoad calls %v %v, want one with 2 clients and no error", ld.n, ld.errs)
	}
	if !strings.Contains(logs.String(), `"msg":"API keys reloaded"`) || !strings.Contains(logs.String(), `"clients":2`) {
		t.Errorf("log %s: want the reload with its count", logs)
	}
}

func TestFile_FailedReloadKeepsTheOldKeys(t *testing.T) {
	for _, tt := range []struct {
		name    string
		breakIt func(t *testing.T, path string)
	}{
		{"malformed", func(t *testing.T, path string) { write(t, path, keyMobile+"\n") }},
		{"empty", func(t *testing.T, path string) { write(t, path, "") }},
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, path, logs, ld := open(t, "railco:"+keyBooking+"\n")
			tt.breakIt(t, path)
			if err := f.Reload(); err == nil {
				t.Fatal("Reload: no error")
			}
			if lookup(f, keyBooking) != "railco" {
				t.Error("the old key stopped working")
			}
			if ld.count() != 1 || ld.n[0] != 1 || ld.errs[0] == nil {
				t.Errorf("OnLoad calls %v %v, want one with the 1 client still in use and the error", ld.n, ld.errs)
			}
			if !strings.Contains(logs.String(), `"level":"ERROR"`) || strings.Contains(logs.String(), keyMobile) {
				t.Errorf("log %s: want an error, and no key", logs)
			}
		})
	}
}

func TestFile_WatchReloadsAChangedFile(t *testing.T) {
	f, path, _, ld := open(t, "railco:"+keyBooking+"\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Watch(ctx, 10*time.Millisecond)
	}()
	defer func() { cancel(); <-done }()

	write(t, path, "railco:"+keyMobile+"\n")
	brokertest.Eventually(t, 5*time.Second, "the rewritten file to be loaded", func() bool {
		return lookup(f, keyMobile) == "railco"
	})
	if lookup(f, keyBooking) != "" {
		t.Error("the old key still works")
	}
	// A broken rewrite is reported, once, and changes nothing.
	write(t, path, "railco "+keyPartner+"\n")
	brokertest.Eventually(t, 5*time.Second, "the broken file to be reported", func() bool { return ld.count() == 2 })
	if lookup(f, keyMobile) != "railco" {
		t.Error("a broken file replaced the keys")
	}
	// Fixed: loaded again.
	write(t, path, "railco:"+keyPartner+"\n")
	brokertest.Eventually(t, 5*time.Second, "the fixed file to be loaded", func() bool {
		return lookup(f, keyPartner) == "railco"
	})
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if len(ld.errs) != 3 || ld.errs[0] != nil || ld.errs[1] == nil || ld.errs[2] != nil {
		t.Errorf("OnLoad errors %v, want nil, an error, nil", ld.errs)
	}
}

func TestFile_WatchReturnsWhenCancelled(t *testing.T) {
	f, _, _, _ := open(t, "railco:"+keyBooking+"\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Watch(ctx, time.Hour)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}
