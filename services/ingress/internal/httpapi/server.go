// Package httpapi is the ingress's HTTP port: it accepts catering
// registrations, stores each in RabbitMQ, and answers 202 only once the broker
// confirmed it.
package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/config"
)

// Publisher stores messages in the broker. Implementations are safe for
// concurrent use; *broker.Publisher is the real one.
type Publisher interface {
	// Publish sends msg to exchange with routing key key and returns nil only
	// once the broker confirmed that a queue stored it. Any error means the
	// message must be treated as not stored. When ctx ends before the confirm,
	// Publish returns an error promptly (the message may still be stored).
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
	// Ready reports whether Publish can currently succeed.
	Ready() bool
	// Blocked reports whether a broker resource alarm blocks publishing.
	Blocked() bool
}

// Observer is told about requests, for metrics. The server calls it from
// every request's goroutine: implementations must be safe for concurrent use
// and must not block.
type Observer interface {
	// Answered reports a request once it is answered, with its status and
	// the outcome the request log shows.
	Answered(status int, outcome string)
	// Registration reports how long a POST /catering/register took to
	// answer, whatever the answer.
	Registration(took time.Duration)
	// Confirmed reports how long the broker took to confirm a registration
	// it stored.
	Confirmed(took time.Duration)
}

type nopObserver struct{}

func (nopObserver) Answered(int, string)       {}
func (nopObserver) Registration(time.Duration) {}
func (nopObserver) Confirmed(time.Duration)    {}

// Option configures a Server.
type Option func(*Server)

// WithObserver has obs told about every request.
func WithObserver(obs Observer) Option { return func(s *Server) { s.obs = obs } }

// WithMetrics serves h at GET /metrics.
func WithMetrics(h http.Handler) Option { return func(s *Server) { s.metrics = h } }

// HTTP server timeouts. There is no write timeout: a handler is bounded by
// PUBLISH_TIMEOUT and its responses are a few bytes.
const (
	// readHeaderTimeout stops slow-loris clients from holding connections.
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds reading a whole request; MAX_BODY_BYTES is small.
	readTimeout = 30 * time.Second
	// idleTimeout closes keep-alive connections nobody uses.
	idleTimeout = 2 * time.Minute
)

// Server serves POST /catering/register, GET /healthz, GET /readyz and,
// when given a handler, GET /metrics.
type Server struct {
	echo    *echo.Echo
	pub     Publisher
	log     *slog.Logger
	obs     Observer
	metrics http.Handler

	exchange, routingKey string
	maxBody              int
	publishTimeout       time.Duration
	retryAfter           string // Retry-After value on 503, in seconds

	draining atomic.Bool // set by Shutdown: /readyz says not ready
}

// New returns a Server that publishes registrations to topo's exchange with
// the main queue as routing key.
func New(cfg config.Config, pub Publisher, topo *topology.Topology, log *slog.Logger, opts ...Option) *Server {
	s := &Server{
		echo:           echo.New(),
		pub:            pub,
		log:            log,
		obs:            nopObserver{},
		exchange:       topo.Exchange,
		routingKey:     topo.Queue,
		maxBody:        cfg.MaxBodyBytes,
		publishTimeout: cfg.PublishTimeout,
		retryAfter:     strconv.Itoa(int(cfg.RetryAfter / time.Second)),
	}
	for _, o := range opts {
		o(s)
	}
	e := s.echo
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Server.ReadHeaderTimeout = readHeaderTimeout
	e.Server.ReadTimeout = readTimeout
	e.Server.IdleTimeout = idleTimeout
	e.Server.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)

	e.Use(s.logRequests)
	e.POST(pathRegister, s.register)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.metrics != nil {
		e.GET(pathMetrics, s.serveMetrics)
	}
	return s
}

// ServeHTTP serves one request; it makes the Server usable with httptest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Serve accepts connections on ln until Shutdown, then returns
// http.ErrServerClosed at once (Shutdown is what waits for requests).
func (s *Server) Serve(ln net.Listener) error { return s.echo.Server.Serve(ln) }

// Shutdown marks the server not ready, stops accepting connections and waits
// until every in-flight request has been answered, or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	return s.echo.Shutdown(ctx)
}
