package stub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/railco/relay/services/catering-stub/internal/webhook"
)

const (
	// MaxBodyBytes caps a /catering body; the real backend takes orders, not uploads.
	MaxBodyBytes = 1 << 20
	// maxAdminBodyBytes caps a PUT /admin/mode body, which is a handful of fields.
	maxAdminBodyBytes = 64 << 10
	// readHeaderTimeout stops a client that never finishes its headers from
	// holding a connection (and a goroutine) for ever.
	readHeaderTimeout = 10 * time.Second
)

// Replies are marshalled once: the success path runs thousands of times a
// second under the benchmarks.
var (
	successReply = []byte(`{"success":true}` + "\n")
	failureReply = []byte(`{"success":false,"error":"simulated failure"}` + "\n")
	healthReply  = []byte(`{"status":"ok"}` + "\n")
)

// Options configures New.
type Options struct {
	// Mode is the failure behaviour at start.
	Mode Mode
	// Quiet turns off the per-request log line.
	Quiet bool
	// Logger receives request lines and errors; nil discards them.
	Logger *slog.Logger
	// Verifier, when set, checks every /catering request's signature: a
	// missing, wrong or stale one is answered 401 and not recorded.
	Verifier *webhook.Verifier
}

// Server is the stub's HTTP server. It is safe for concurrent use; the mode
// may be changed while requests are in flight and applies from the next one.
type Server struct {
	echo     *echo.Echo
	rec      *Recorder
	log      *slog.Logger
	verifier *webhook.Verifier // nil checks nothing

	// mode is read on every request without a lock; modeMu only serialises
	// writers so that two concurrent patches do not lose each other's fields.
	mode   atomic.Pointer[Mode]
	modeMu sync.Mutex
}

// New returns a Server with its routes registered, or an error if
// opts.Mode is invalid.
func New(opts Options) (*Server, error) {
	if err := opts.Mode.Validate(); err != nil {
		return nil, fmt.Errorf("stub mode: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{echo: echo.New(), rec: NewRecorder(), log: log, verifier: opts.Verifier}
	m := opts.Mode
	s.mode.Store(&m)

	e := s.echo
	e.HideBanner = true
	e.HidePort = true
	e.Server.ReadHeaderTimeout = readHeaderTimeout
	e.HTTPErrorHandler = s.handleError
	if !opts.Quiet {
		e.Use(requestLogger(log))
	}
	e.POST("/catering", s.catering)
	e.GET("/received", s.received)
	e.DELETE("/received", s.reset)
	e.GET("/admin/mode", s.getMode)
	e.PUT("/admin/mode", s.putMode)
	e.GET("/healthz", s.healthz)
	return s, nil
}

// ServeHTTP makes the Server usable with httptest and any http.Server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Serve accepts connections on ln until Shutdown; it then returns
// http.ErrServerClosed at once, before Shutdown has finished, so callers
// must wait for Shutdown too.
func (s *Server) Serve(ln net.Listener) error {
	s.echo.Listener = ln
	return s.echo.Start("")
}

// Shutdown stops accepting connections and waits, until ctx is done, for
// requests in flight to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.echo.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown http server: %w", err)
	}
	return nil
}

// Recorder returns the recorder the server writes to.
func (s *Server) Recorder() *Recorder { return s.rec }

// Mode returns the current failure mode.
func (s *Server) Mode() Mode { return *s.mode.Load() }

// UpdateMode applies p to the current mode and returns the result. On error
// the mode is unchanged.
func (s *Server) UpdateMode(p ModePatch) (Mode, error) {
	s.modeMu.Lock()
	defer s.modeMu.Unlock()
	next, err := p.Apply(*s.mode.Load())
	if err != nil {
		return Mode{}, err
	}
	s.mode.Store(&next)
	return next, nil
}

func (s *Server) catering(c echo.Context) error {
	req := c.Request()
	// Read the whole body before any failure mode so that a dropped or
	// failed request behaves the same however fast the client sends.
	body, err := io.ReadAll(http.MaxBytesReader(c.Response().Writer, req.Body, MaxBodyBytes))
	if err != nil {
		s.rec.Fail()
		return fmt.Errorf("read body: %w", err)
	}

	m := s.mode.Load()
	if m.Down {
		s.rec.Fail()
		return drop(c)
	}
	// Like a real backend: who sent it is settled before anything else is
	// done with it.
	signature := ""
	if s.verifier != nil {
		if err := s.verifier.Verify(req.Header, body); err != nil {
			s.rec.Unauthorized()
			c.Set(logOutcomeAttr, "signature refused")
			return fmt.Errorf("%w: %w", errUnauthorized, err)
		}
		signature = "valid"
	}
	if m.Latency > 0 {
		if err := sleep(req.Context(), m.Latency); err != nil {
			s.rec.Fail()
			return fmt.Errorf("wait latency: %w", err)
		}
	}
	status := http.StatusOK
	switch {
	case m.ForceStatus != 0:
		status = m.ForceStatus
	case m.FailureRate > 0 && rand.Float64() < m.FailureRate:
		status = m.FailureStatus
	}
	if status >= http.StatusMultipleChoices {
		s.rec.Fail()
		return reply(c, status, failureReply)
	}

	key := s.rec.Record(Delivery{
		Key:         req.Header.Get("Idempotency-Key"),
		Attempt:     attempt(req),
		Body:        body,
		ContentType: req.Header.Get(echo.HeaderContentType),
		Signature:   signature,
		At:          time.Now(),
	})
	c.Set(logKeyAttr, key)
	return reply(c, status, successReply)
}

func (s *Server) received(c echo.Context) error {
	if q := c.QueryParams(); q.Has("key") {
		key := q.Get("key")
		rec, ok := s.rec.Get(key)
		if !ok {
			return fmt.Errorf("idempotency key %q: %w", key, errNotFound)
		}
		return c.JSON(http.StatusOK, rec)
	}
	return c.JSON(http.StatusOK, s.rec.Snapshot())
}

func (s *Server) reset(c echo.Context) error {
	s.rec.Reset()
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) getMode(c echo.Context) error {
	return c.JSON(http.StatusOK, s.Mode())
}

func (s *Server) putMode(c echo.Context) error {
	var p ModePatch
	dec := json.NewDecoder(http.MaxBytesReader(c.Response().Writer, c.Request().Body, maxAdminBodyBytes))
	// A misspelt field would otherwise be ignored and the test would run in
	// a mode it did not ask for.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("decode mode: %w: %w", errBadRequest, err)
	}
	m, err := s.UpdateMode(p)
	if err != nil {
		return fmt.Errorf("update mode: %w: %w", errBadRequest, err)
	}
	s.log.Info("mode changed", "mode", m)
	return c.JSON(http.StatusOK, m)
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, healthReply)
}

// drop closes the connection without writing anything, so the client sees a
// transport error rather than any HTTP status.
func drop(c echo.Context) error {
	c.Set(logOutcomeAttr, "dropped")
	conn, _, err := c.Response().Hijack()
	if err != nil {
		// HTTP/2 connections cannot be hijacked; aborting the handler resets
		// the stream instead, which the client also sees as a transport error.
		panic(http.ErrAbortHandler)
	}
	if err := conn.Close(); err != nil {
		return fmt.Errorf("close dropped connection: %w", err)
	}
	return nil
}

// sleep waits d, or returns early with ctx's error when the client gives up.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reply writes a canned JSON body, or none where HTTP forbids one.
func reply(c echo.Context, status int, body []byte) error {
	if status == http.StatusNoContent || status == http.StatusNotModified {
		return c.NoContent(status)
	}
	return c.JSONBlob(status, body)
}

// attempt returns X-Delivery-Attempt as an int, or 0 when absent or malformed:
// the stub records what it got rather than rejecting a delivery over it.
func attempt(r *http.Request) int {
	n, err := strconv.Atoi(r.Header.Get("X-Delivery-Attempt"))
	if err != nil {
		return 0
	}
	return n
}

var (
	// errBadRequest marks errors caused by the request's content.
	errBadRequest = errors.New("bad request")
	// errNotFound marks lookups of something the stub never saw.
	errNotFound = errors.New("not found")
	// errUnauthorized marks a request whose signature does not verify.
	errUnauthorized = errors.New("webhook signature refused")
)

// handleError is the one place where errors become HTTP statuses.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var (
		status   = http.StatusInternalServerError
		msg      = err.Error()
		httpErr  *echo.HTTPError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, errNotFound):
		status = http.StatusNotFound
	case errors.Is(err, errUnauthorized):
		status = http.StatusUnauthorized
	case errors.As(err, &httpErr):
		status, msg = httpErr.Code, fmt.Sprint(httpErr.Message)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client hung up; nobody will read an answer.
		c.Set(logOutcomeAttr, "client gone")
		return
	default:
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status) // nothing useful to do if the client is gone
		return
	}
	_ = c.JSON(status, map[string]string{"error": msg}) // as above
}
