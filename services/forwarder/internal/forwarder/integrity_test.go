package forwarder_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/railco/relay/pkg/brokertest"
	"github.com/railco/relay/pkg/envelope"
	"github.com/railco/relay/services/forwarder/internal/breaker"
)

// redirector is a backend that answers POST /catering with a redirect to
// /landing, which answers 200 to anything: the trap that made a 302 look
// like a delivery when the client followed it with a body-less GET.
type redirector struct {
	*httptest.Server
	redirect atomic.Bool
	mu       sync.Mutex
	posts    map[string]int // POSTs with the whole body, by Idempotency-Key
	landed   atomic.Int32   // requests that followed the redirect
}

func newRedirector(t *testing.T) *redirector {
	r := &redirector{posts: map[string]int{}}
	r.redirect.Store(true)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/landing" {
			r.landed.Add(1)
			return
		}
		body, _ := io.ReadAll(req.Body)
		if r.redirect.Load() {
			w.Header().Set("Location", "/landing")
			w.WriteHeader(http.StatusFound)
			return
		}
		if string(body) == seedBody {
			r.mu.Lock()
			r.posts[req.Header.Get("Idempotency-Key")]++
			r.mu.Unlock()
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *redirector) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.posts)
}

// A redirect is a failed attempt, never a delivery: the message goes through
// its attempts and ends in the dead-letter queue with the Location, and the
// redirect's target never sees a request.
func TestForwarder_RedirectIsNeverDelivered(t *testing.T) {
	be := newRedirector(t)
	h := start(t, brokertest.Config(t), be.URL+"/catering")

	h.publish(t, "redirected", seedBody)

	dead := brokertest.Get(t, h.conn, h.topo.DeadQueue, 20*time.Second)
	m := envelope.Read(dead)
	if dead.MessageId != "redirected" || m.Reason != envelope.ReasonMaxAttempts || m.Attempts != h.topo.MaxAttempts || m.LastStatus != 302 {
		t.Errorf("dead letter %q: reason %q attempts %d last status %d; want max-attempts after %d attempts, 302",
			dead.MessageId, m.Reason, m.Attempts, m.LastStatus, h.topo.MaxAttempts)
	}
	if loc := dead.Headers[envelope.HeaderLastLocation]; loc != "/landing" {
		t.Errorf("%s = %v, want /landing", envelope.HeaderLastLocation, loc)
	}
	if !strings.Contains(m.LastError, "302 Found redirecting to /landing") {
		t.Errorf("last error %q does not name the redirect", m.LastError)
	}
	if n := be.landed.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
	if n := h.obs.resultCount("3xx"); n != h.topo.MaxAttempts {
		t.Errorf("observer saw %d 3xx results, want %d", n, h.topo.MaxAttempts)
	}
	if !strings.Contains(h.logs.String(), "location=/landing") {
		t.Errorf("the log does not record the Location:\n%s", h.logs.String())
	}
}

// A backend that redirects every request is misconfigured, not serving:
// delivery pauses as in an outage, no message is dead-lettered, and all
// arrive once it is fixed.
func TestForwarder_RedirectingEverythingPausesDelivery(t *testing.T) {
	be := newRedirector(t)
	h := start(t, brokertest.Config(t), be.URL+"/catering")

	const n = 10
	for i := range n {
		h.publish(t, fmt.Sprint("misrouted-", i), seedBody)
	}
	brokertest.Eventually(t, 15*time.Second, "the breaker to open", func() bool { return h.brk.State() != breaker.Closed })
	brokertest.Eventually(t, 15*time.Second, "two failed probes", func() bool {
		return strings.Count(h.logs.String(), "probe failed; still paused") >= 2
	})
	if d := brokertest.Depth(t, h.conn, h.topo.DeadQueue); d != 0 {
		t.Fatalf("%d dead letters while the backend redirected everything, want 0", d)
	}
	be.redirect.Store(false)

	brokertest.Eventually(t, 20*time.Second, "every message delivered", func() bool { return be.delivered() == n })
	if d := brokertest.Depth(t, h.conn, h.topo.DeadQueue); d != 0 {
		t.Errorf("%d dead letters, want 0", d)
	}
	if n := be.landed.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests, want 0", n)
	}
}

// A message whose id cannot be an HTTP header value (published straight to
// the broker) is dead-lettered at once with its own reason: it never reaches
// the backend and never opens the breaker.
func TestForwarder_InvalidIDIsDeadLetteredAtOnce(t *testing.T) {
	be := newBackend(t, always(200))
	h := start(t, brokertest.Config(t), be.URL)

	h.publish(t, "bad\nid", seedBody)
	h.publish(t, "good", seedBody)

	dead := brokertest.Get(t, h.conn, h.topo.DeadQueue, 10*time.Second)
	m := envelope.Read(dead)
	if dead.MessageId != "bad\nid" || m.Reason != envelope.ReasonInvalidMessage || m.Attempts != 0 {
		t.Errorf("dead letter %q: reason %q attempts %d; want %q with 0 attempts", dead.MessageId, m.Reason, m.Attempts, envelope.ReasonInvalidMessage)
	}
	if !strings.Contains(m.LastError, "not a valid HTTP header value") {
		t.Errorf("last error %q does not say why", m.LastError)
	}
	reqs := be.waitRequests(t, 1, 10*time.Second)
	if len(reqs) != 1 || reqs[0].key != "good" {
		t.Errorf("backend got %+v, want only the good message", reqs)
	}
	if s := h.brk.State(); s != breaker.Closed {
		t.Errorf("breaker %v, want closed", s)
	}
}
