package stub

import (
	"strconv"
	"sync"
	"time"
)

// Record is everything the stub keeps about one idempotency key.
type Record struct {
	// IdempotencyKey is the request's Idempotency-Key header, or a generated
	// "no-key-N" when the request had none.
	IdempotencyKey string `json:"idempotencyKey"`
	// Attempt is X-Delivery-Attempt of the latest request (0 if absent or not a number).
	Attempt int `json:"attempt"`
	// Deliveries counts the successful requests for this key, duplicates included.
	Deliveries int `json:"deliveries"`
	// Body is the latest request's body, byte for byte.
	Body string `json:"body"`
	// ContentType is the latest request's Content-Type header.
	ContentType string `json:"contentType"`
	// Signature is the outcome of checking the latest request's signature:
	// "valid", or absent when the stub checks none (no STUB_SIGNING_SECRET).
	// Requests with a bad one are refused, so never recorded.
	Signature string `json:"signature,omitempty"`
	// FirstReceivedAt is when the first successful request for the key arrived.
	FirstReceivedAt time.Time `json:"firstReceivedAt"`
	// LastReceivedAt is when the latest successful request for the key arrived.
	LastReceivedAt time.Time `json:"lastReceivedAt"`
}

// Delivery is one successful request, as handed to Recorder.Record.
type Delivery struct {
	// Key is the Idempotency-Key header; empty means "generate one".
	Key string
	// Attempt is the X-Delivery-Attempt header as a number.
	Attempt int
	// Body is the request body; Record copies it, so the caller may reuse it.
	Body []byte
	// ContentType is the Content-Type header.
	ContentType string
	// Signature is the outcome of its signature check; empty when none was made.
	Signature string
	// At is when the request arrived.
	At time.Time
}

// Snapshot is the body of GET /received.
type Snapshot struct {
	// Count is the number of distinct keys.
	Count int `json:"count"`
	// Deliveries is the number of successful requests, duplicates included.
	Deliveries int `json:"deliveries"`
	// Failed is the number of requests that got no success answer.
	Failed int `json:"failed"`
	// Unauthorized is the number of those refused with 401 for their
	// signature (missing, wrong or stale); absent while it is 0, so that the
	// answer of a stub that checks no signature is as before.
	Unauthorized int `json:"unauthorized,omitempty"`
	// Items holds one Record per key, in order of first arrival.
	Items []Record `json:"items"`
}

// Recorder keeps deliveries in memory. It is safe for concurrent use; every
// method takes one mutex for a map lookup and an append, which is cheap
// enough for the thousands of requests per second the benchmarks send.
type Recorder struct {
	mu           sync.Mutex
	byKey        map[string]*Record
	order        []*Record
	deliveries   int
	failed       int
	unauthorized int
	// generated numbers keys for requests without one; it survives Reset so a
	// key seen before a reset is never handed out again afterwards.
	generated uint64
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{byKey: make(map[string]*Record)}
}

// Record stores d and returns the key it was stored under.
func (r *Recorder) Record(d Delivery) string {
	// Convert outside the lock: it copies the body, which is the only part
	// of recording whose cost grows with the request.
	body := string(d.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	key := d.Key
	if key == "" {
		r.generated++
		key = "no-key-" + strconv.FormatUint(r.generated, 10)
	}
	r.deliveries++
	rec, ok := r.byKey[key]
	if !ok {
		rec = &Record{IdempotencyKey: key, FirstReceivedAt: d.At}
		r.byKey[key] = rec
		r.order = append(r.order, rec)
	}
	rec.Attempt = d.Attempt
	rec.Deliveries++
	rec.Body = body
	rec.ContentType = d.ContentType
	rec.Signature = d.Signature
	rec.LastReceivedAt = d.At
	return key
}

// Fail counts a request that was not answered with success.
func (r *Recorder) Fail() {
	r.mu.Lock()
	r.failed++
	r.mu.Unlock()
}

// Unauthorized counts a request refused for its signature (also a failure).
func (r *Recorder) Unauthorized() {
	r.mu.Lock()
	r.failed++
	r.unauthorized++
	r.mu.Unlock()
}

// Get returns a copy of the record for key.
func (r *Recorder) Get(key string) (Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, ok := r.byKey[key]
	if !ok {
		return Record{}, false
	}
	return *rec, true
}

// Snapshot returns a consistent copy of everything recorded so far.
func (r *Recorder) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	items := make([]Record, len(r.order)) // never nil: "items":[] reads better than null
	for i, rec := range r.order {
		items[i] = *rec
	}
	return Snapshot{Count: len(r.order), Deliveries: r.deliveries, Failed: r.failed, Unauthorized: r.unauthorized, Items: items}
}

// Reset forgets all records and zeroes the counters.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byKey = make(map[string]*Record)
	r.order = nil
	r.deliveries = 0
	r.failed = 0
	r.unauthorized = 0
}
