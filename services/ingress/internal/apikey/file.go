package apikey

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxFileSize bounds what is read: 1 MiB is some ten thousand clients.
const maxFileSize = 1 << 20

// Options configure a File.
type Options struct {
	// Log receives a line for every reload, and the error of each that
	// failed. Nil: discard.
	Log *slog.Logger
	// OnLoad, if set, is told the outcome of every load after the first:
	// the number of clients now in use, and the error of a reload that
	// failed (the previous keys stay in use). It must not block.
	OnLoad func(clients int, err error)
}

// File is the key set of a keys file, reloaded on Reload and, under Watch,
// whenever the file's content changes. It is safe for concurrent use.
type File struct {
	path   string
	log    *slog.Logger
	onLoad func(int, error)

	set atomic.Pointer[Set]

	mu         sync.Mutex        // serialises loads; guards seen and unreadable
	seen       [sha256.Size]byte // hash of the content last read, loaded or not
	unreadable bool              // the last check could not read the file
}

// Open reads the keys file at path. It fails when the file cannot be read or
// has no valid client, naming the line of every problem, never a key.
func Open(path string, opts Options) (*File, error) {
	f := &File{path: path, log: opts.Log, onLoad: opts.OnLoad}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	sum, content, err := read(path)
	if err != nil {
		return nil, err
	}
	set, err := Parse(content)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.seen = sum
	f.set.Store(set)
	return f, nil
}

// Lookup is the current Set's Lookup.
func (f *File) Lookup(key string) (name string, ok bool) { return f.set.Load().Lookup(key) }

// Current returns the Set in use.
func (f *File) Current() *Set { return f.set.Load() }

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Reload reads the file again and uses its keys from now on. When the file
// cannot be read or parsed, the keys in use stay, the error is logged, and
// returned.
func (f *File) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum, content, err := read(f.path)
	if err != nil {
		return f.failed(err)
	}
	f.seen = sum
	return f.load(content)
}

// Watch reads the file every interval and reloads it when its content
// changed, until ctx ends. The file is small (at most 1 MiB, usually a few
// hundred bytes), so it is read and hashed whole each time: unlike its size
// and modification time, that misses no change, even one made twice within
// the file system's timestamp granularity. A file that cannot be read, or
// whose new content is invalid, is reported once, not at every poll; the keys
// in use stay.
func (f *File) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.check()
		}
	}
}

// check reloads the file if its content changed since it was last read.
func (f *File) check() {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum, content, err := read(f.path)
	if err != nil {
		if !f.unreadable { // reported once, until it can be read again
			f.unreadable = true
			_ = f.failed(err)
		}
		return
	}
	f.unreadable = false
	if sum == f.seen {
		return // unchanged, or touched, or the same broken content as before
	}
	f.seen = sum
	_ = f.load(content)
}

// load parses content and swaps it in; f.mu is held.
func (f *File) load(content []byte) error {
	set, err := Parse(content)
	if err != nil {
		return f.failed(err)
	}
	f.set.Store(set)
	// Client names are not logged: a line with its columns swapped by
	// mistake would have a key for a name.
	f.log.Info("API keys reloaded", "file", f.path, "clients", set.Len())
	if f.onLoad != nil {
		f.onLoad(set.Len(), nil)
	}
	return nil
}

// failed reports a load that failed; the keys in use stay. f.mu is held.
func (f *File) failed(err error) error {
	err = fmt.Errorf("reload API keys from %s: %w", f.path, err)
	in := f.set.Load().Len()
	f.log.Error("API keys NOT reloaded: the previous keys stay in use", "err", err, "clients", in)
	if f.onLoad != nil {
		f.onLoad(in, err)
	}
	return err
}

// read returns the file's content and its SHA-256.
func read(path string) ([sha256.Size]byte, []byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return [sha256.Size]byte{}, nil, err
	}
	defer file.Close()
	content, err := io.ReadAll(io.LimitReader(file, maxFileSize+1))
	if err != nil {
		return [sha256.Size]byte{}, nil, err
	}
	if len(content) > maxFileSize {
		return [sha256.Size]byte{}, nil, errors.New("file is larger than 1 MiB")
	}
	return sha256.Sum256(content), content, nil
}
