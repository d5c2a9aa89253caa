// Package logtest holds what tests need to read a service's log: a buffer
// that the logger and the test may use at once.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer whose content can be read while it is written to.
// The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
