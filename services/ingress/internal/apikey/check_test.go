package apikey

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// check is Watch's step, run here deterministically: it reloads when the
// content changed, and reports a broken file once, not at every poll.
func TestFile_CheckReloadsOnlyWhatChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	put := func(content string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	put("railco:K3y-booking-0123456789abcdef\n", t0)
	var calls []error
	f, err := Open(path, Options{OnLoad: func(_ int, err error) { calls = append(calls, err) }})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		do      func()
		calls   int  // OnLoad calls so far
		lastErr bool // the last one failed
	}{
		{"unchanged", func() {}, 0, false},
		{"touched, same content", func() { put("railco:K3y-booking-0123456789abcdef\n", t0.Add(time.Minute)) }, 0, false},
		{"new content", func() { put("railco:K3y-mobile-0123456789abcdef\n", t0.Add(2*time.Minute)) }, 1, false},
		{"broken", func() { put("railco\n", t0.Add(3*time.Minute)) }, 2, true},
		{"still broken, polled again", func() {}, 2, true},
		{"removed", func() { _ = os.Remove(path) }, 3, true},
		{"still missing, polled again", func() {}, 3, true},
		{"back, fixed", func() { put("railco:K3y-partner-0123456789abcdef\n", t0.Add(4*time.Minute)) }, 4, false},
	}
	for _, s := range steps {
		s.do()
		f.check()
		if len(calls) != s.calls || (s.calls > 0 && (calls[len(calls)-1] != nil) != s.lastErr) {
			t.Fatalf("%s: OnLoad calls %v, want %d, the last failed: %v", s.name, calls, s.calls, s.lastErr)
		}
	}
	if name, _ := f.Lookup("K3y-partner-0123456789abcdef"); name != "railco" {
		t.Errorf("the last good file is not in use")
	}
}
