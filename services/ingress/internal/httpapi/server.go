// Package httpapi is the ingress's HTTP port: it accepts catering
// registrations, stores each in RabbitMQ, and answers 202 only once the broker
// confirmed it.
package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/events"
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
	// ClientAnswered reports a request from a known client once it is
	// answered: the name of its API key's client, or "anonymous" on an
	// ingress without keys.
	ClientAnswered(client string, status int)
	// AuthFailed reports a request refused (401) for want of a known
	// client's API key; reason is missing, malformed or invalid.
	AuthFailed(reason string)
	// RateLimited reports a request of client refused (429) because the
	// client was over its rate limit.
	RateLimited(client string)
}

type nopObserver struct{}

func (nopObserver) Answered(int, string)       {}
func (nopObserver) Registration(time.Duration) {}
func (nopObserver) Confirmed(time.Duration)    {}
func (nopObserver) ClientAnswered(string, int) {}
func (nopObserver) AuthFailed(string)          {}
func (nopObserver) RateLimited(string)         {}

// Option configures a Server.
type Option func(*Server)

// WithObserver has obs told about every request.
func WithObserver(obs Observer) Option { return func(s *Server) { s.obs = obs } }

// WithAPIKeys has POST /catering/register answered only with a known
// client's API key (Authorization: Bearer <key>), and names the client in
// logs and metrics. Without it, anyone may register, as client "anonymous".
func WithAPIKeys(keys Authenticator) Option { return func(s *Server) { s.keys = keys } }

// WithClientRateLimit limits each client's registrations, keyed by its name
// (with WithAPIKeys; without, all clients share the "anonymous" allowance).
func WithClientRateLimit(l RateLimiter[string]) Option {
	return func(s *Server) {
		s.limit = func(obs Observer) echo.MiddlewareFunc { return limitRate(l, clientKey, obs) }
	}
}

// WithAddrRateLimit limits registrations per remote address (an IPv6
// address's /64), for an ingress without keys.
func WithAddrRateLimit(l RateLimiter[netip.Addr]) Option {
	return func(s *Server) {
		s.limit = func(obs Observer) echo.MiddlewareFunc { return limitRate(l, addrKey, obs) }
	}
}

// WithConnState has hook told about every connection's state changes
// (http.Server.ConnState): the connection limiter learns from it which
// connections are idle.
func WithConnState(hook func(net.Conn, http.ConnState)) Option {
	return func(s *Server) { s.connState = hook }
}

// WithBrokerNode has /readyz name the broker node the ingress is connected
// to (host:port; "" while it is not), as node() tells.
func WithBrokerNode(node func() string) Option { return func(s *Server) { s.node = node } }

// WithEvents has every stored registration's accepted event published by em.
func WithEvents(em *events.Emitter) Option { return func(s *Server) { s.events = em } }

// Limits of one request that are not configuration (the timeouts and the
// body limit are).
const (
	// readHeaderTimeout stops slow-loris clients from holding connections:
	// a client's headers arrive in one or two packets, and a new connection
	// that sends nothing is closed after this too.
	readHeaderTimeout = 5 * time.Second
	// maxHeaderBytes bounds a request's headers (larger get 431): a
	// registration needs a few hundred bytes; 16 KiB leaves room for proxies'
	// forwarding and tracing headers and a large Authorization, where
	// net/http's default of 1 MiB per request would let a flood of large
	// headers cost the ingress memory. (net/http allows 4 KiB above it.)
	maxHeaderBytes = 16 << 10
)

// Server serves POST /catering/register, GET /healthz, GET /readyz and GET
// /openapi.json (their description): the public port. Operational endpoints
// (metrics) are served elsewhere (package admin), so that anyone who can
// register cannot read them.
type Server struct {
	echo  *echo.Echo
	pub   Publisher
	log   *slog.Logger
	obs   Observer
	keys  Authenticator                      // nil: anyone may register
	limit func(Observer) echo.MiddlewareFunc // nil: no rate limit

	connState func(net.Conn, http.ConnState)
	node      func() string // the broker node, for /readyz; nil: not shown

	exchange, routingKey string
	maxBody              int
	publishTimeout       time.Duration
	retryAfter           string // Retry-After value on 503, in seconds

	draining atomic.Bool // set by Shutdown: /readyz says not ready

	events *events.Emitter // accepted events; nil: none
	lookup Lookup          // GET /catering/registrations/{id}; nil: not served
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
	e.Server.ReadTimeout = cfg.ReadTimeout
	e.Server.WriteTimeout = cfg.WriteTimeout
	e.Server.IdleTimeout = cfg.IdleTimeout
	e.Server.MaxHeaderBytes = maxHeaderBytes
	e.Server.ConnState = s.connState
	e.Server.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)

	e.Use(s.logRequests)
	guard := []echo.MiddlewareFunc{anonymous}
	if s.keys != nil {
		guard[0] = requireAPIKey(s.keys, s.obs)
	}
	if s.limit != nil {
		guard = append(guard, s.limit(s.obs))
	}
	e.POST(pathRegister, s.register, guard...)
	if s.lookup != nil {
		e.GET(pathRegistration, s.registrationStatus, guard[0])
	}
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET(pathOpenAPI, s.openapi)
	return s
}

// ServeHTTP serves one request; it makes the Server usable with httptest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Serve accepts connections on ln until Shutdown, then returns
// http.ErrServerClosed at once (Shutdown is what waits for requests).
func (s *Server) Serve(ln net.Listener) error { return s.echo.Server.Serve(ln) }

// Shutdown marks the server not ready, stops accepting connections and waits
// until every in-flight request has been answered, or ctx ends.
// Accepted events still on their way are waited for too (each is bounded by
// PUBLISH_TIMEOUT).
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	err := s.echo.Shutdown(ctx)
	s.events.Wait() // accepted events waiting for their confirm
	return err
}
