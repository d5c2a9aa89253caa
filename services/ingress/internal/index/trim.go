package index

import (
	"bytes"
	"context"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The index follows the stream's retention by age (INGRESS_INDEX_MAX_AGE,
// by default EVENTS_MAX_AGE): a registration whose newest event is older
// than EVENTS_MAX_AGE is gone from the stream, so it
// goes from the index too (a lookup answers 404, as an index rebuilt from
// the stream would). A registration that still waits somewhere (accepted,
// held, retrying, dead-lettered) is kept whatever its age: its message is
// still in a queue, and its status and the oldest-waiting metric still
// matter. Retention by size (EVENTS_MAX_BYTES) is not followed: the index
// cannot tell which events the broker dropped for it.

// trimBatch is how many records one write transaction of Trim examines: the
// consumer's batches wait behind it, so it is kept short.
var trimBatch = 10_000

// Trim deletes the records of registrations that wait nowhere and whose
// newest event is older than before. It returns how many it deleted; when
// ctx ends it stops between transactions, with ctx's error.
func (x *Index) Trim(ctx context.Context, before time.Time) (deleted int, err error) {
	cut := before.UnixNano()
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		n, next, err := x.trimFrom(cut, from)
		deleted += n
		if err != nil || next == nil {
			return deleted, err
		}
		from = next
	}
}

// trimFrom examines up to trimBatch records from key from (the first, for
// nil) in one transaction; next is where the following call starts, nil
// after the last record.
func (x *Index) trimFrom(cut int64, from []byte) (deleted int, next []byte, err error) {
	err = x.db.Update(func(tx *bolt.Tx) error {
		regs := tx.Bucket(bucketRegs)
		c := regs.Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		// Deleting under a cursor moves it: collect first, delete after.
		var old [][]byte
		for seen := 0; k != nil; k, v = c.Next() {
			if seen >= max(trimBatch, 1) {
				next = bytes.Clone(k)
				break
			}
			seen++
			st, _, err := splitRecord(v, nil)
			if err != nil {
				continue // Registration reports it; trimming leaves it alone
			}
			if st.Wait == nil && newest(&st) < cut {
				old = append(old, bytes.Clone(k))
			}
		}
		for _, k := range old {
			if err := regs.Delete(k); err != nil {
				return err
			}
		}
		deleted = len(old)
		return nil
	})
	return deleted, next, err
}

// newest is the time of a registration's newest event that its state
// records, Unix ns: of its status-bearing event ranked highest, its
// acceptance and its latest redrive. (An event ranked lower that came
// later, such as a duplicate attempt after its delivery, is not counted:
// such a registration may go a little before its last event leaves the
// stream.)
func newest(st *state) int64 {
	return max(st.At, st.AcceptedAt, st.RedrivenAt)
}

// TrimEvery trims registrations older than maxAge at once and then every
// interval, until ctx ends; maxAge 0 never trims.
func (x *Index) TrimEvery(ctx context.Context, maxAge, interval time.Duration, log *slog.Logger) {
	if maxAge <= 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		started := time.Now()
		n, err := x.Trim(ctx, started.Add(-maxAge))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("index not trimmed", "err", err)
		} else if n > 0 {
			log.Info("index trimmed: registrations older than INGRESS_INDEX_MAX_AGE removed", "removed", n, "max_age", maxAge.String(), "duration_ms", time.Since(started).Milliseconds())
		}
		t.Reset(interval)
	}
}

// TrimInterval is how often the ingress trims its index: an eighth of the
// retention, and at least hourly.
func TrimInterval(maxAge time.Duration) time.Duration {
	return min(time.Hour, max(maxAge/8, time.Second))
}
