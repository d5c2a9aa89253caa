// Package index answers "where is my registration?" on the ingress: an
// embedded store (bbolt, one file per replica) of every registration's
// events, built from the event stream and kept up to date by consuming it.
//
// The stream is the source of truth. The index stores, in one transaction,
// a batch of events and the stream offset of the last one; after a restart
// it consumes from the next offset, so every event is applied exactly once
// to it. A lost or deleted index file is rebuilt from the stream (within its
// retention). A lookup is one B+tree read and a fold of the registration's
// few events: no scan, whatever the number of registrations.
package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	bolt "go.etcd.io/bbolt"

	"github.com/railco/relay/pkg/events"
)

var (
	// bucketRegs holds one record per registration, under its id: its state
	// (what the next event changes) and its events' JSON in stream order. A
	// batch of events reads and writes each registration it touches once,
	// however many of its events the batch holds (in steady operation the
	// accepted, attempt and delivered events of a registration mostly come
	// in one batch).
	bucketRegs = []byte("registrations")
	bucketMeta = []byte("meta") // keyOffset → last applied stream offset; keyFormat → format
	// bucketWait holds one key per registration that waits somewhere:
	// queue, 0, since (big-endian Unix nanoseconds), id. Keys sort by queue
	// then age, so the oldest of each queue is one seek away.
	bucketWait = []byte("waiting")
	keyOffset  = []byte("offset")
	keyFormat  = []byte("format")
	// keySource names the stream the index was built from: "<vhost>/<name>".
	keySource = []byte("source")
)

// format is the layout of the file this code writes. A file of another
// layout (an older relay's, or none recorded) is emptied at Open and
// rebuilt from the stream: the index is a copy of it.
const format = "3"

// Observer is told about registrations as the index learns of them, for
// metrics. It is called from the consuming goroutine and must not block.
type Observer interface {
	// Delivered reports a registration newly delivered, with the time from
	// its acceptance to its delivery.
	Delivered(latency time.Duration)
}

// Queues names where a waiting registration waits, for Oldest.
type Queues struct {
	Main string // accepted, held, or redriven and not yet attempted
	Dead string // dead-lettered
	// Retry tiers are named by the retry_scheduled events themselves.
}

// Index is the store. Lookups are safe for concurrent use with each other
// and with the consumer.
type Index struct {
	db     *bolt.DB
	obs    Observer
	queues Queues

	mu      sync.Mutex // Apply's
	scratch scratch
}

// Open opens (or creates) the index file at path. Only one process may
// hold it: a second one fails after openTimeout. obs may be nil.
func Open(path string, queues Queues, obs Observer) (*Index, error) {
	// NoSync: the index is a copy of the stream, so a write need not wait
	// for the disk. A process crash loses nothing (the kernel has the
	// pages); a machine crash may leave the file damaged, and a damaged
	// file is deleted and rebuilt from the stream.
	// The map freelist finds free pages in constant time; the default array
	// one scans them, which a large file with many freed pages makes slow.
	// 16 KiB pages (for a new file; an existing one keeps its own): a
	// commit writes a page per system call, and a batch's registrations,
	// mostly neighbours, fit in fewer of them (BenchmarkApply 10 % faster
	// than with 4 KiB; lookups at 1,000,000 registrations as fast).
	opts := &bolt.Options{Timeout: openTimeout, NoFreelistSync: true, NoSync: true, FreelistType: bolt.FreelistMapType, PageSize: 16 << 10}
	db, err := bolt.Open(path, 0o600, opts)
	if err != nil && !errors.Is(err, bolt.ErrTimeout) && !errors.Is(err, os.ErrPermission) {
		if rmErr := os.Remove(path); rmErr == nil {
			db, err = bolt.Open(path, 0o600, opts) // rebuilt from the stream
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m == nil || string(m.Get(keyFormat)) != format {
			// Not this layout: start again from the stream's first event.
			var names [][]byte
			if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, bytes.Clone(name))
				return nil
			}); err != nil {
				return err
			}
			for _, name := range names {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		for _, name := range [][]byte{bucketRegs, bucketWait, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte(format))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("create index buckets: %w", err)
	}
	return &Index{db: db, obs: obs, queues: queues}, nil
}

// openTimeout is how long Open waits for another process's lock on the file.
const openTimeout = 2 * time.Second

// Close closes the file.
func (x *Index) Close() error { return x.db.Close() }

// Registration returns what the index holds of id.
func (x *Index) Registration(id string) (events.Registration, bool, error) {
	var evs []events.Event
	err := x.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRegs).Get([]byte(id))
		if v == nil {
			return nil
		}
		_, rest, err := splitRecord(v, nil)
		if err != nil {
			return fmt.Errorf("record of %s: %w", id, err)
		}
		evs = make([]events.Event, 0, 4)
		for len(rest) > 0 {
			var e events.Event
			if e, rest, err = readEvent(rest, id); err != nil {
				return fmt.Errorf("record of %s: %w", id, err)
			}
			evs = append(evs, e)
		}
		return nil
	})
	if err != nil || len(evs) == 0 {
		return events.Registration{}, false, err
	}
	return events.Fold(evs), true, nil
}

// A record is: the length of the encoded state (uvarint), the state, then
// its events in stream order, each in the form of appendEvent.

// splitRecord returns a record's state and the bytes of its events. The
// state's strings come from in (nil: new strings); its Wait is v's own
// bytes, valid as long as v is.
func splitRecord(v []byte, in strs) (state, []byte, error) {
	var st state
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return st, nil, errBadState
	}
	if err := st.decode(v[w:w+int(n)], in); err != nil {
		return st, nil, err
	}
	return st, v[w+int(n):], nil
}

// Offset returns the stream offset of the last event applied; ok is false
// for an empty index.
func (x *Index) Offset() (offset int64, ok bool, err error) {
	err = x.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyOffset)
		if len(v) == 8 {
			offset, ok = int64(binary.BigEndian.Uint64(v)), true
		}
		return nil
	})
	return offset, ok, err
}

// Record is one message as read from the stream: its body (events) and
// offset.
type Record struct {
	Offset int64
	Body   []byte
}

// state is what the index keeps of a registration besides its events:
// enough to tell, as each event comes, its status and where it waits,
// without reading its other events.
type state struct {
	Status     string
	Type       string // the status-bearing event ranked highest so far
	Redrive    int
	Attempt    int
	At         int64  // its time, Unix ns
	Tier       string // its retry tier
	AcceptedAt int64  // Unix ns
	RedrivenAt int64  // the latest redrive, Unix ns
	Wait       []byte // its bucketWait key
	Delivered  bool   // delivery latency observed
}

// appendTo appends st in the index's binary form to b: fixed fields, then
// the strings, each after its length.
func (st *state) appendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(st.Redrive))
	b = binary.AppendUvarint(b, uint64(st.Attempt))
	b = binary.AppendVarint(b, st.At)
	b = binary.AppendVarint(b, st.AcceptedAt)
	b = binary.AppendVarint(b, st.RedrivenAt)
	d := byte(0)
	if st.Delivered {
		d = 1
	}
	b = append(b, d)
	for _, s := range [...]string{st.Status, st.Type, st.Tier} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(st.Wait)))
	return append(b, st.Wait...)
}

var errBadState = errors.New("malformed state")

// decode reads what appendTo wrote. Its strings come from in when it has
// them (nil: new strings each); its Wait is b's own bytes.
func (st *state) decode(b []byte, in strs) error {
	r := varintReader{b: b}
	st.Redrive, st.Attempt = int(r.uvarint()), int(r.uvarint())
	st.At, st.AcceptedAt, st.RedrivenAt = r.varint(), r.varint(), r.varint()
	st.Delivered = r.byte() == 1
	st.Status, st.Type, st.Tier = in.get(r.bytes()), in.get(r.bytes()), in.get(r.bytes())
	st.Wait = nil
	if w := r.bytes(); len(w) > 0 {
		st.Wait = w
	}
	if r.bad {
		return errBadState
	}
	return nil
}

// strs interns a state's strings (statuses, event types, retry tiers: a
// handful of values), so that decoding a state does not allocate them.
type strs map[string]string

func (in strs) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if in != nil && len(in) < 256 {
		in[s] = s
	}
	return s
}

// apply advances st by e; it reports a newly delivered registration's
// latency.
// It leaves st.Wait as it was: Apply sets it (appendWaitKey) once all of
// a batch's events are applied.
func (x *Index) apply(st *state, e *events.Event) (latency time.Duration, delivered bool) {
	if e.AcceptedAt != nil && (st.AcceptedAt == 0 || e.AcceptedAt.UnixNano() < st.AcceptedAt) {
		st.AcceptedAt = e.AcceptedAt.UnixNano()
	}
	if e.Type == events.TypeAccepted && (st.AcceptedAt == 0 || e.At.UnixNano() < st.AcceptedAt) {
		st.AcceptedAt = e.At.UnixNano()
	}
	if e.Type == events.TypeRedriven && e.At.UnixNano() > st.RedrivenAt {
		st.RedrivenAt = e.At.UnixNano()
	}
	last := events.Event{Type: st.Type, Redrive: st.Redrive, Attempt: st.Attempt}
	if s := events.StatusOf(*e); s != "" && (st.Type == "" || events.Rank(*e, last) >= 0) {
		st.Status, st.Type, st.Redrive, st.Attempt, st.At, st.Tier = s, e.Type, e.Redrive, e.Attempt, e.At.UnixNano(), e.Tier
	}
	if st.Status == "" {
		st.Status = events.StatusAccepted // as Fold: a last attempt whose outcome's event is on its way
	}
	if st.Status == events.StatusDelivered && !st.Delivered {
		st.Delivered = true
		if st.AcceptedAt != 0 {
			return time.Duration(st.At - st.AcceptedAt), true
		}
	}
	return 0, false
}

// Apply stores a batch of messages' events and the offset of the last
// message, in one transaction. A message that does not hold events of a
// known version is skipped (and counted in skipped): another producer's,
// or a newer schema. Apply is called by one goroutine at a time (Consume's;
// a second caller waits).
func (x *Index) Apply(batch []Record) (skipped int, err error) {
	if len(batch) == 0 {
		return 0, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	s := &x.scratch
	s.reset()
	for _, r := range batch {
		var err error
		if s.evs, err = events.AppendMessageEvents(s.evs, r.Body); err != nil {
			skipped++
		}
	}
	s.group()
	// In key order: neighbouring registrations share B-tree pages.
	slices.SortFunc(s.regs, func(a, b reg) int { return strings.Compare(a.id, b.id) })
	var delivered []time.Duration
	err = x.db.Update(func(tx *bolt.Tx) error {
		regb, wait := tx.Bucket(bucketRegs), tx.Bucket(bucketWait)
		// Ids are mostly time-ordered (UUIDv7): fuller pages than the
		// default half, for appends.
		regb.FillPercent = 0.9
		// One cursor for the lookups: Get makes one each, which allocates.
		c := regb.Cursor()
		for _, p := range s.regs {
			// bbolt keeps a Put's key and value until the commit: both
			// live in the arena, which is not reused before it.
			key := s.alloc(p.id)
			var st state
			var old []byte
			if k, v := c.Seek(key); v != nil && bytes.Equal(k, key) {
				var err error
				if st, old, err = s.splitRecord(v); err != nil {
					return fmt.Errorf("record of %s: %w", p.id, err)
				}
			}
			prevWait := st.Wait
			for i := p.head; i >= 0; i = s.next[i] {
				if lat, ok := x.apply(&st, &s.evs[i]); ok {
					delivered = append(delivered, lat)
				}
			}
			st.Wait = x.appendWaitKey(s, p.id, &st)
			if !bytes.Equal(prevWait, st.Wait) {
				if prevWait != nil {
					if err := wait.Delete(prevWait); err != nil {
						return err
					}
				}
				if st.Wait != nil {
					if err := wait.Put(st.Wait, nil); err != nil {
						return err
					}
				}
			}
			s.enc = st.appendTo(s.enc[:0])
			start := s.begin()
			s.arena = binary.AppendUvarint(s.arena, uint64(len(s.enc)))
			s.arena = append(append(s.arena, s.enc...), old...) // old is only valid in this tx: copied here
			for i := p.head; i >= 0; i = s.next[i] {
				s.arena = appendEvent(s.arena, &s.evs[i])
			}
			if err := regb.Put(key, s.end(start)); err != nil {
				return err
			}
		}
		var off [8]byte
		binary.BigEndian.PutUint64(off[:], uint64(batch[len(batch)-1].Offset))
		return tx.Bucket(bucketMeta).Put(keyOffset, off[:])
	})
	if err != nil {
		return 0, fmt.Errorf("apply %d messages: %w", len(batch), err)
	}
	if x.obs != nil {
		for _, d := range delivered {
			x.obs.Delivered(d)
		}
	}
	return skipped, nil
}

// appendWaitKey returns the bucketWait key of registration id in state
// st, in s's arena; nil when it waits nowhere (delivered, purged).
func (x *Index) appendWaitKey(s *scratch, id string, st *state) []byte {
	var queue string
	since := st.At
	switch st.Status {
	case events.StatusAccepted, events.StatusHeld:
		// In the main queue since it was accepted, or since its last redrive.
		queue = x.queues.Main
		switch {
		case st.RedrivenAt != 0:
			since = st.RedrivenAt
		case st.AcceptedAt != 0:
			since = st.AcceptedAt
		}
	case events.StatusRetrying:
		queue = st.Tier
		if queue == "" {
			queue = "retry" // its retry_scheduled event is still on its way
		}
	case events.StatusDead:
		queue = x.queues.Dead
	default:
		return nil
	}
	start := s.begin()
	s.arena = append(append(s.arena, queue...), 0)
	s.arena = binary.BigEndian.AppendUint64(s.arena, uint64(since))
	s.arena = append(s.arena, id...)
	return s.end(start)
}

// scratch is what Apply reuses from one batch to the next: its grouping of
// events by registration, and an arena for the keys and values it stores
// (bbolt holds them until the commit; the arena is only rewritten by the
// next batch's Apply).
type scratch struct {
	ids   map[string]int32 // registration id → its index in regs
	regs  []reg
	evs   []events.Event // the batch's, in stream order
	next  []int32        // per event in evs: the next one of its registration, or -1
	arena []byte
	enc   []byte
	strs  strs
}

// reg is a registration a batch touches, and its first event in evs.
type reg struct {
	id         string
	head, tail int32
}

func (s *scratch) reset() {
	if s.ids == nil {
		s.ids, s.strs = map[string]int32{}, strs{}
	}
	clear(s.ids)
	clear(s.evs) // let the last batch's events go
	s.regs, s.evs, s.next, s.arena = s.regs[:0], s.evs[:0], s.next[:0], s.arena[:0]
	// A batch far larger than steady operation's (~3,000 events; a rebuild
	// from the stream brings up to 1,000 messages of 256) does not keep its
	// arrays: they go with the garbage.
	if cap(s.evs) > keepEvents {
		s.regs, s.evs, s.next, s.ids = nil, nil, nil, map[string]int32{}
	}
	if cap(s.arena) > keepEvents*256 {
		s.arena = nil
	}
}

// keepEvents is the most events whose arrays scratch keeps between batches.
const keepEvents = 1 << 14

// group links each of evs to the next of its registration, in regs.
func (s *scratch) group() {
	for i := range s.evs {
		n, id := int32(i), s.evs[i].ID
		s.next = append(s.next, -1)
		if r, ok := s.ids[id]; ok {
			s.next[s.regs[r].tail], s.regs[r].tail = n, n
			continue
		}
		s.ids[id] = int32(len(s.regs))
		s.regs = append(s.regs, reg{id: id, head: n, tail: n})
	}
}

// begin and end delimit bytes appended to the arena; end returns them. A
// slice returned earlier stays valid when the arena grows: append copies
// to a new array and leaves the old one as it was.
func (s *scratch) begin() int { return len(s.arena) }

func (s *scratch) end(start int) []byte { return s.arena[start:len(s.arena):len(s.arena)] }

// alloc copies str into the arena.
func (s *scratch) alloc(str string) []byte {
	start := s.begin()
	s.arena = append(s.arena, str...)
	return s.end(start)
}

// splitRecord is the package's splitRecord, with interned strings and the
// state's Wait copied into the arena (the record's bytes may move when
// the transaction writes near them).
func (s *scratch) splitRecord(v []byte) (state, []byte, error) {
	st, rest, err := splitRecord(v, s.strs)
	if err == nil && st.Wait != nil {
		start := s.begin()
		s.arena = append(s.arena, st.Wait...)
		st.Wait = s.end(start)
	}
	return st, rest, err
}

// Oldest returns, for each queue where registrations wait, since when the
// oldest of them waits there.
func (x *Index) Oldest() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := x.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketWait).Cursor()
		for k, _ := c.First(); k != nil; {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) < i+9 {
				k, _ = c.Next()
				continue
			}
			queue := string(k[:i])
			out[queue] = time.Unix(0, int64(binary.BigEndian.Uint64(k[i+1:i+9])))
			k, _ = c.Seek(append([]byte(queue), 1)) // the next queue
		}
		return nil
	})
	return out, err
}

// Consumer settings. A batch is applied when it holds batchMax messages or
// batchWait after its first, whichever comes first: a delivery shows in
// lookups well within a second, and the longer the batch, the more
// registrations have all their steady-state events (accepted, attempt,
// delivered) in one batch, so that one write stores them (250 ms against
// 50 ms: measured, docs/BENCHMARKS.md "Event cost").
const (
	prefetch  = 2000
	batchMax  = 1000
	batchWait = 250 * time.Millisecond
)

// Consume applies the stream's events from the one after the last applied
// (the first one kept, for an empty index) until ctx ends (nil) or the
// channel is lost (an error). It is a broker.Session's body: give it a
// connection of its own.
func (x *Index) Consume(ctx context.Context, conn *amqp.Connection, stream string, log *slog.Logger) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open index channel: %w", err)
	}
	defer ch.Close()
	// A stream consumer must set a prefetch, and ack: the ack is what lets
	// the broker send more (nothing is removed from a stream).
	if err := ch.Qos(prefetch, 0, false /* global */); err != nil {
		return fmt.Errorf("set index prefetch: %w", err)
	}
	if err := x.follow(conn.Config.Vhost+"/"+stream, log); err != nil {
		return err
	}
	var from any = "first"
	last, ok, err := x.Offset()
	if err != nil {
		return err
	}
	if ok {
		from = last + 1
	}
	deliveries, err := ch.Consume(stream, "", false /* autoAck */, false /* exclusive */, false /* noLocal */, false, /* noWait */
		amqp.Table{"x-stream-offset": from})
	if err != nil {
		return fmt.Errorf("consume %s: %w", stream, err)
	}
	log.Info("index consuming the event stream", "stream", stream, "from", from)

	var (
		batch   []Record
		lastTag uint64
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		skipped, err := x.Apply(batch)
		if err != nil {
			return err
		}
		if skipped > 0 {
			log.Warn("events skipped: not relay's, or of an unknown schema version", "count", skipped)
		}
		batch = batch[:0]
		return ch.Ack(lastTag, true /* multiple */)
	}
	for {
		select {
		case <-ctx.Done():
			return flush()
		case <-timer.C:
			if err := flush(); err != nil {
				return err
			}
		case d, ok := <-deliveries:
			if !ok {
				_ = flush() // what arrived is applied; acks no longer matter
				return errors.New("event stream consumer closed")
			}
			off, ok := streamOffset(d.Headers)
			if !ok {
				return errors.New("event stream delivery without x-stream-offset")
			}
			if len(batch) == 0 {
				timer.Reset(batchWait)
			}
			batch = append(batch, Record{Offset: off, Body: d.Body})
			lastTag = d.DeliveryTag
			if len(batch) >= batchMax {
				timer.Stop()
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}

// follow records source as the stream the index is built from. An index
// built from another stream (another vhost or prefix: its offsets mean
// nothing in this one) is emptied first, to be built again from this
// stream's first event. An index without a source (built before sources
// were recorded) takes this one as its own.
func (x *Index) follow(source string, log *slog.Logger) error {
	return x.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		old := string(meta.Get(keySource))
		if old == source {
			return nil
		}
		if old != "" {
			log.Warn("index built from another event stream: emptied, to be built again from this one", "was", old, "stream", source)
			for _, name := range [][]byte{bucketRegs, bucketWait} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			if err := meta.Delete(keyOffset); err != nil {
				return err
			}
		}
		return meta.Put(keySource, []byte(source))
	})
}

func streamOffset(h amqp.Table) (int64, bool) {
	switch v := h["x-stream-offset"].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	}
	return 0, false
}
