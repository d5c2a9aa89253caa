package stub_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a stuck
// handler or an unclosed connection would otherwise go unnoticed until the
// benchmarks run out of memory.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
