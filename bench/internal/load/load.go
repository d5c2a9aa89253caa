// Package load drives the ingress with vegeta: at a fixed rate (open model,
// latency measured against the schedule, so without coordinated omission),
// or closed loop (a fixed number of connections each sending its next request
// as soon as the previous one is answered) to find the maximum.
//
// Every request carries the seed's body with a unique passengerId and an
// Idempotency-Key equal to it, so the ingress uses it as the message id and
// the sink can match deliveries to accepts.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Payload is the seed body with a hole where passengerId's value goes.
type Payload struct {
	head, tail []byte
}

var passengerID = regexp.MustCompile(`("passengerId"\s*:\s*")[^"]*(")`)

// NewPayload splits seed at its passengerId value.
// openModelConnections bounds the connections of a fixed-rate load: half the
// ingress's default INGRESS_MAX_CONNECTIONS.
const openModelConnections = 512

func NewPayload(seed []byte) (*Payload, error) {
	loc := passengerID.FindSubmatchIndex(seed)
	if loc == nil {
		return nil, errors.New(`payload has no "passengerId" string`)
	}
	return &Payload{head: seed[:loc[3]], tail: seed[loc[4]:]}, nil
}

// Body returns the seed with passengerId set to id; id must need no JSON escaping.
func (p *Payload) Body(id string) []byte {
	b := make([]byte, 0, len(p.head)+len(id)+len(p.tail))
	b = append(b, p.head...)
	b = append(b, id...)
	return append(b, p.tail...)
}

// Options describe one load run.
type Options struct {
	URL     string // POST target
	Payload *Payload
	IDs     string // id prefix, unique per run and phase
	// Rate is requests per second; 0 means closed loop with Connections.
	Rate        int
	Connections int
	Duration    time.Duration
	// Warmup is left out of the latency and throughput figures (connections
	// are being dialled and caches warmed); its requests still count as sent
	// and accepted.
	Warmup time.Duration
}

// Result is what one run measured.
type Result struct {
	Sent     int            `json:"sent"`
	Accepted int            `json:"accepted"`
	Errors   int            `json:"errors"`
	ErrorsBy map[string]int `json:"errors_by,omitempty"`
	// AcceptedPerSec counts 202s completed in the measured window (after the
	// warm-up) per second.
	AcceptedPerSec float64 `json:"accepted_per_sec"`
	// Latency: each measured 202's time from its scheduled send (fixed
	// rate) or its actual send (closed loop) to the answer.
	Latency []time.Duration `json:"-"`
	// MaxLag is the longest a send started after its scheduled time (fixed
	// rate): the load generator's own lateness, included in Latency.
	MaxLag time.Duration `json:"max_send_lag_ns"`
	// PeakConns is the most connections the generator had open at once: at a
	// fixed rate it opens another whenever every open one waits for an answer.
	PeakConns int `json:"peak_connections"`
	// AcceptedAt and SentAt map each accepted id to when its 202 arrived and
	// when its request was sent.
	AcceptedAt map[string]time.Time `json:"-"`
	SentAt     map[string]time.Time `json:"-"`
	Start, End time.Time            `json:"-"`
}

// Run attacks o.URL until o.Duration passed or ctx ends.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Duration <= o.Warmup {
		return nil, fmt.Errorf("duration %s must exceed warm-up %s", o.Duration, o.Warmup)
	}
	var seq atomic.Int64
	header := http.Header{"Content-Type": {"application/json"}}
	targeter := func(t *vegeta.Target) error {
		id := o.IDs + "-" + strconv.FormatInt(seq.Add(1), 10)
		t.Method = http.MethodPost
		t.URL = o.URL
		t.Body = o.Payload.Body(id)
		t.Header = header.Clone()
		t.Header["Idempotency-Key"] = []string{id}
		return nil
	}

	conns := &connCounter{}
	transport := &http.Transport{
		DialContext:         conns.dial((&net.Dialer{KeepAlive: 30 * time.Second}).DialContext),
		MaxIdleConnsPerHost: 10000,
	}
	defer transport.CloseIdleConnections()
	var pacer vegeta.ConstantPacer
	// Client first: the options after it configure its transport.
	opts := []func(*vegeta.Attacker){
		vegeta.Client(&http.Client{Transport: transport}),
		vegeta.KeepAlive(true), vegeta.Timeout(30 * time.Second), vegeta.Redirects(vegeta.NoFollow),
	}
	var interval time.Duration
	if o.Rate > 0 {
		pacer = vegeta.ConstantPacer{Freq: o.Rate, Per: time.Second}
		interval = time.Duration(time.Second.Nanoseconds() / int64(o.Rate)) // as the pacer computes it
		// Start with enough workers for ~20 ms of answers; vegeta adds more
		// whenever all are busy, so sends keep to the schedule.
		workers := uint64(max(o.Rate/50, 16))
		// A client pool, as real clients have: without a cap, a stall makes
		// vegeta open thousands of connections, which the ingress sheds at
		// INGRESS_MAX_CONNECTIONS, and the bench measures its own thrashing.
		// Requests beyond the pool wait in the client; accept latency counts
		// from the schedule, so the wait shows.
		opts = append(opts, vegeta.Workers(workers), vegeta.Connections(openModelConnections), vegeta.MaxConnections(openModelConnections))
	} else {
		if o.Connections < 1 {
			return nil, errors.New("closed loop needs Connections")
		}
		// Rate 0 is vegeta's "as fast as the workers go": with a fixed pool
		// of workers that is a closed loop.
		pacer = vegeta.ConstantPacer{Freq: 0, Per: time.Second}
		n := uint64(o.Connections)
		opts = append(opts, vegeta.Workers(n), vegeta.MaxWorkers(n), vegeta.Connections(o.Connections), vegeta.MaxConnections(o.Connections))
	}
	atk := vegeta.NewAttacker(opts...)
	res := &Result{ErrorsBy: map[string]int{}, AcceptedAt: map[string]time.Time{}, SentAt: map[string]time.Time{}}
	// Taken just before Attack takes its own start: the schedule computed from
	// it is at most microseconds early, which only lengthens latencies.
	res.Start = time.Now()
	measureFrom := res.Start.Add(o.Warmup)
	measureTo := res.Start.Add(o.Duration)
	results := atk.Attack(targeter, pacer, o.Duration, o.IDs)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	var inWindow int
	for r := range results {
		res.Sent++
		done := r.Timestamp.Add(r.Latency)
		if r.Code != http.StatusAccepted {
			res.Errors++
			key := r.Error
			if r.Code != 0 {
				key = strconv.Itoa(int(r.Code)) + " " + string(bytes.TrimSpace(r.Body))
				if len(key) > 120 {
					key = key[:120]
				}
			}
			res.ErrorsBy[key]++
			continue
		}
		id, ok := acceptedID(r.Body)
		if !ok {
			res.Errors++
			res.ErrorsBy["202 without an id: "+string(r.Body)]++
			continue
		}
		res.Accepted++
		res.AcceptedAt[id] = done
		res.SentAt[id] = r.Timestamp
		latency := r.Latency
		sched := r.Timestamp
		if interval > 0 {
			sched = res.Start.Add(time.Duration(r.Seq+1) * interval)
			if lag := r.Timestamp.Sub(sched); lag > res.MaxLag {
				res.MaxLag = lag
			}
			latency = max(latency, done.Sub(sched))
		}
		if !sched.Before(measureFrom) {
			res.Latency = append(res.Latency, latency)
		}
		if !done.Before(measureFrom) && !done.After(measureTo) {
			inWindow++
		}
		if done.After(res.End) {
			res.End = done
		}
	}
	res.AcceptedPerSec = float64(inWindow) / (o.Duration - o.Warmup).Seconds()
	res.PeakConns = int(conns.peak.Load())
	if len(res.ErrorsBy) == 0 {
		res.ErrorsBy = nil
	}
	return res, ctx.Err()
}

// connCounter counts the generator's open connections and their peak.
type connCounter struct {
	open, peak atomic.Int64
}

func (c *connCounter) dial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		n := c.open.Add(1)
		for {
			p := c.peak.Load()
			if n <= p || c.peak.CompareAndSwap(p, n) {
				break
			}
		}
		return &countedConn{Conn: conn, open: &c.open}, nil
	}
}

type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// acceptedID reads "id" from the ingress's 202 answer {"id":"…","status":"accepted"}
// without a JSON decoder: the load generator shares the CPUs it measures.
func acceptedID(body []byte) (string, bool) {
	const key = `"id":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 {
		return "", false
	}
	return string(rest[:j]), true
}
