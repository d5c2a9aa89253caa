package delivery_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/railco/relay/pkg/tlsconfig"
	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/signing"
	"github.com/railco/relay/services/forwarder/internal/testcert"
	"github.com/railco/relay/services/forwarder/internal/webhooktest"
)

const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks test vector's
	otherSecret = "whsec_cmVsYXkncyBuZXh0IHNpZ25pbmcga2V5LCAzMiBieXRlcw=="
)

// captured is what a test backend saw of one request.
type captured struct {
	header http.Header
	body   []byte
}

func capturing(t *testing.T) (*httptest.Server, func() []captured) {
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, captured{r.Header.Clone(), body})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

// Every attempt carries webhook-id (the message id), its own
// webhook-timestamp and one signature per secret, each verifiable with its
// secret alone by an independent verifier (package webhooktest): a backend that knows only the old or only the new secret
// accepts the request while keys rotate.
func TestDeliver_SignsEveryAttempt(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		srv, seen := capturing(t)
		signer, err := signing.New(testSecret + " " + otherSecret)
		if err != nil {
			t.Fatal(err)
		}
		clock := time.Unix(1_700_000_000, 0)
		c := newClient(delivery.Options{Endpoint: srv.URL, Conns: 1, Signer: signer, Now: func() time.Time { return clock }})
		defer c.Close()
		body := []byte(" {\"passengerId\": \"241241d\"}\n")
		for attempt := 1; attempt <= 2; attempt++ {
			if res := c.Deliver(context.Background(), delivery.Request{ID: "reg-7", Attempt: attempt, Body: body}); res.Err != nil {
				t.Fatal(res.Err)
			}
			clock = clock.Add(25 * time.Second) // the retry tier's wait
		}
		reqs := seen()
		for i, r := range reqs {
			h := r.header
			if h.Get("webhook-id") != "reg-7" || h.Get("webhook-id") != h.Get("Idempotency-Key") {
				t.Errorf("attempt %d: webhook-id %q, want the message id", i+1, h.Get("webhook-id"))
			}
			if want := strconv.FormatInt(1_700_000_000+25*int64(i), 10); h.Get("webhook-timestamp") != want {
				t.Errorf("attempt %d: webhook-timestamp %q, want %s (the attempt's own time)", i+1, h.Get("webhook-timestamp"), want)
			}
			sigs := strings.Split(h.Get("webhook-signature"), " ")
			if len(sigs) != 2 {
				t.Fatalf("attempt %d: webhook-signature %q, want two signatures", i+1, h.Get("webhook-signature"))
			}
			for j, secret := range []string{testSecret, otherSecret} {
				one := h.Clone()
				one.Set("webhook-signature", sigs[j])
				if err := webhooktest.Verify(secret, one, r.body, clock, 0); err != nil {
					t.Errorf("attempt %d, signature %d: %v", i+1, j+1, err)
				}
			}
			if err := webhooktest.Verify(testSecret, h, append([]byte("x"), r.body...), clock, 0); err == nil {
				t.Errorf("attempt %d: a tampered body verified", i+1)
			}
		}
		if len(reqs) == 2 && reqs[0].header.Get("webhook-signature") == reqs[1].header.Get("webhook-signature") {
			t.Error("two attempts at different times carry the same signature")
		}
	})
}

func TestDeliver_UnsignedWithoutSecret(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		srv, seen := capturing(t)
		c := newClient(delivery.Options{Endpoint: srv.URL, Conns: 1})
		defer c.Close()
		if res := c.Deliver(context.Background(), delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")}); res.Err != nil {
			t.Fatal(res.Err)
		}
		for k := range seen()[0].header {
			if strings.HasPrefix(strings.ToLower(k), "webhook-") {
				t.Errorf("unsigned request carries %s", k)
			}
		}
	})
}

// The endpoint's user and password go to the backend as basic
// authentication, and never into an error text (which becomes a log line
// and a dead letter's x-relay-last-error).
func TestDeliver_ErrorsNeverShowTheEndpointPassword(t *testing.T) {
	eachPath(t, func(t *testing.T) {
		release := make(chan struct{})
		var user, pass string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pass, _ = r.BasicAuth()
			if r.URL.Path == "/slow" {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}
		}))
		defer srv.Close()
		defer close(release)
		withPassword := strings.Replace(srv.URL, "http://", "http://relay:s3cr3t-pw@", 1)

		if res := deliver(t, withPassword+"/ok", []byte("{}"), time.Second); res.Err != nil || user != "relay" || pass != "s3cr3t-pw" {
			t.Errorf("result %+v, basic auth %q:%q; want a delivery as relay", res, user, pass)
		}
		timedOut := deliver(t, withPassword+"/slow", []byte("{}"), 100*time.Millisecond)
		refused := deliver(t, "http://relay:s3cr3t-pw@127.0.0.1:1/catering", []byte("{}"), time.Second)
		for name, res := range map[string]delivery.Result{"timeout": timedOut, "refused": refused} {
			if res.Err == nil {
				t.Fatalf("%s: no error", name)
			}
			if msg := res.Err.Error(); strings.Contains(msg, "s3cr3t") || !strings.Contains(msg, "relay:") {
				t.Errorf("%s: error %q; want the URL with its user and without its password", name, msg)
			}
		}
		if timedOut.Kind() != delivery.TimedOut || refused.Kind() != delivery.Unreachable {
			t.Errorf("kinds %v, %v; want timed-out, unreachable", timedOut.Kind(), refused.Kind())
		}
	})
}

// tlsBackend is an HTTPS backend whose certificate a CA of the test's own
// signed; with clients set, it requires a client certificate that CA signed.
func tlsBackend(t *testing.T, serverCA *testcert.CA, clients *testcert.CA) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCA.Server(t, "backend").TLS}}
	if clients != nil {
		srv.TLS.ClientCAs = clients.Pool()
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func tlsDeliver(t *testing.T, url string, files tlsconfig.Files) delivery.Result {
	t.Helper()
	cfg, err := files.Config("")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(delivery.Options{Endpoint: url, Conns: 1, TLS: cfg})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Deliver(ctx, delivery.Request{ID: "k", Attempt: 1, Body: []byte("{}")})
}

// A backend with a certificate of a private CA is trusted with
// CATERING_CA_FILE and only with it. A refused certificate is no answer
// (unreachable): delivery pauses rather than spending attempts.
func TestDeliver_TrustsThePrivateCAOnlyWhenGiven(t *testing.T) {
	ca := testcert.NewCA(t, "catering-ca")
	srv := tlsBackend(t, ca, nil)

	if res := tlsDeliver(t, srv.URL, tlsconfig.Files{}); res.Err == nil || res.Kind() != delivery.Unreachable || !strings.Contains(res.Err.Error(), "certificate") {
		t.Errorf("without CATERING_CA_FILE: kind %v err %v; want an unreachable backend with an untrusted certificate", res.Kind(), res.Err)
	}
	if res := tlsDeliver(t, srv.URL, tlsconfig.Files{CA: testcert.NewCA(t, "other-ca").File}); res.Err == nil {
		t.Error("another CA's file made the backend trusted")
	}
	if res := tlsDeliver(t, srv.URL, tlsconfig.Files{CA: ca.File}); res.Err != nil || res.Status != http.StatusAccepted {
		t.Errorf("with CATERING_CA_FILE: %+v, want 202", res)
	}
}

// A backend that requires client certificates takes relay's and refuses a
// request without one.
func TestDeliver_PresentsTheClientCertificate(t *testing.T) {
	ca := testcert.NewCA(t, "catering-ca")
	clients := testcert.NewCA(t, "railco-clients")
	srv := tlsBackend(t, ca, clients)
	relay := clients.Client(t, "relay")

	if res := tlsDeliver(t, srv.URL, tlsconfig.Files{CA: ca.File}); res.Err == nil || res.Kind() != delivery.Unreachable {
		t.Errorf("without a client certificate: kind %v err %v; want refused", res.Kind(), res.Err)
	}
	stranger := testcert.NewCA(t, "stranger").Client(t, "stranger")
	if res := tlsDeliver(t, srv.URL, tlsconfig.Files{CA: ca.File, Cert: stranger.CertFile, Key: stranger.KeyFile}); res.Err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
	if res := tlsDeliver(t, srv.URL, tlsconfig.Files{CA: ca.File, Cert: relay.CertFile, Key: relay.KeyFile}); res.Err != nil || res.Status != http.StatusAccepted {
		t.Errorf("with relay's client certificate: %+v, want 202", res)
	}
}
