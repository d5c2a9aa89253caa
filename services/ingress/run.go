package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/railco/relay/pkg/broker"
	pkgconfig "github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/pkg/logging"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/admin"
	"github.com/railco/relay/services/ingress/internal/apikey"
	"github.com/railco/relay/services/ingress/internal/config"
	"github.com/railco/relay/services/ingress/internal/connlimit"
	"github.com/railco/relay/services/ingress/internal/httpapi"
	"github.com/railco/relay/services/ingress/internal/index"
	"github.com/railco/relay/services/ingress/internal/metrics"
	"github.com/railco/relay/services/ingress/internal/ratelimit"
)

// reclaimIdleAfter is how long a connection must have been idle before it is
// closed to admit a new one at INGRESS_MAX_CONNECTIONS. Without it, under an
// overload a busy client's keep-alive connection, idle for a moment between
// two requests, or a new connection whose request the loaded server had not
// read yet, was closed under the client, who saw a reset or EOF instead of
// an answer (make bench, phase 3: docs/BENCHMARKS.md); with it, the overload
// gets 503s. A flood's connections stay idle far longer.
const reclaimIdleAfter = time.Second

// Timeouts of the admin server: its clients are Prometheus and operators,
// and a scrape's answer is larger than a registration's.
const (
	adminReadHeaderTimeout = 5 * time.Second
	adminWriteTimeout      = 30 * time.Second
	adminIdleTimeout       = time.Minute
)

// run serves until ctx ends, then shuts down gracefully and returns nil; it
// returns an error when the configuration is invalid, the address cannot be
// bound, or the broker's topology conflicts with ours.
//
// Shutdown order matters: stop accepting, wait for every in-flight request
// to get its broker confirm and its answer, and only then close the broker
// connection, which would fail confirms still on their way; the admin server
// (metrics) goes last.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log, err := logging.New(stdout, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	brokerTLS, err := cfg.BrokerTLS.Config("")
	if err != nil {
		return fmt.Errorf("configuration: AMQP_CA_FILE, AMQP_CLIENT_CERT_FILE, AMQP_CLIENT_KEY_FILE: %w", err)
	}
	adminToken, err := cfg.AdminBearer()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	topo := topology.New(cfg.Topology)
	topo.Log = log
	pub := broker.NewPublisher(cfg.PublisherChannels)
	pub.SetOnReplaced(broker.LogReplaced(log, "registrations"))
	// The accepted events publish on a channel of their own. Confirms come
	// in order on a channel: sharing one, the registrations published
	// after an event message (~256 events, every 100 ms) waited for its
	// confirm before their 202. Alone: accepted/s ×1.02 steady and ×1.08
	// with failing attempts (cpucost, 5 paired rounds; docs/BENCHMARKS.md).
	var evPub *broker.Publisher
	queues := pkgmetrics.NewQueues(topo, cfg.Metrics.QueueInterval)
	m := metrics.New(pub.Blocked, queues)
	opts := []httpapi.Option{httpapi.WithObserver(m)}
	var idx *index.Index
	if topo.Events != "" {
		em := m.Events(func() (map[string]time.Time, error) { return idx.Oldest() })
		idx, err = index.Open(cfg.IndexPath, index.Queues{Main: topo.Queue, Dead: topo.DeadQueue}, em)
		if err != nil {
			return fmt.Errorf("INGRESS_INDEX_PATH: %w", err)
		}
		defer idx.Close()
		evPub = broker.NewPublisher(1)
		evPub.SetOnReplaced(broker.LogReplaced(log, "accepted events"))
		opts = append(opts, httpapi.WithEvents(events.NewEmitter(evPub, topo.Events, "ingress", cfg.PublishTimeout).SetLinger(cfg.EventsLinger)), httpapi.WithLookup(idx))
	} else {
		log.Info("EVENTS=off: no event stream, no registration status (GET /catering/registrations/{id} is not served)")
	}

	var keys *apikey.File
	if cfg.APIKeysFile == "" {
		m.Clients(apikey.Anonymous)
		log.Warn("INGRESS_API_KEYS_FILE is not set: the ingress is OPEN, anyone who can reach it may store registrations; set it to require API keys")
	} else {
		keys, err = apikey.Open(cfg.APIKeysFile, apikey.Options{Log: log, OnLoad: m.KeysReloaded})
		if err != nil {
			return fmt.Errorf("configuration: INGRESS_API_KEYS_FILE: %w", err)
		}
		m.Clients(keys.Current().Names()...)
		m.KeysLoaded(keys.Current().Len())
		log.Info("API keys loaded: registrations need Authorization: Bearer <key>", "file", keys.Path(),
			"clients", keys.Current().Len(), "poll_interval", cfg.APIKeysPollInterval.String())
		opts = append(opts, httpapi.WithAPIKeys(keys))
	}
	if cfg.RateLimit > 0 {
		o := ratelimit.Options{Rate: cfg.RateLimit, Burst: cfg.RateBurst}
		if keys != nil {
			opts = append(opts, httpapi.WithClientRateLimit(ratelimit.New[string](o)))
		} else {
			opts = append(opts, httpapi.WithAddrRateLimit(ratelimit.New[netip.Addr](o)))
		}
	}

	// SIGHUP reloads the keys; registered before listening, so that a
	// SIGHUP sent once the ingress listens never ends it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ln, err := pkgconfig.Listen(cfg.Addr, cfg.AddrFile)
	if err != nil {
		return fmt.Errorf("INGRESS_ADDR, INGRESS_ADDR_FILE: %w", err)
	}
	adminLn, err := pkgconfig.Listen(cfg.AdminAddr, cfg.AdminAddrFile)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("INGRESS_ADMIN_ADDR, INGRESS_ADMIN_ADDR_FILE: %w", err)
	}
	// Each open connection costs memory, idle or not. At the limit, the
	// connection idle the longest is closed to admit a new one, and when none
	// has been idle for reclaimIdleAfter the new one is answered 503 at once:
	// nobody waits for a slot. The admin address is not limited: a scrape
	// during a flood shows the flood.
	lim := connlimit.New(ln, connlimit.Options{
		Max: cfg.MaxConnections, ReclaimAfter: reclaimIdleAfter, RetryAfter: cfg.RetryAfter, Observer: m, Log: log,
	})
	var node atomic.Pointer[string] // the broker node connected to, for /readyz
	node.Store(new(string))
	opts = append(opts, httpapi.WithBrokerNode(func() string { return *node.Load() }))
	api := httpapi.New(cfg, pub, topo, log, append(opts, httpapi.WithConnState(lim.ConnState))...)
	var adminOpts []admin.Option
	if cfg.PProf {
		adminOpts = append(adminOpts, admin.WithPProf())
		log.Warn("INGRESS_PPROF=on: Go profiles are served at /debug/pprof/ on the admin address")
	}
	adminSrv := &http.Server{
		Handler:           admin.Handler(m.Handler(), api, adminToken, adminOpts...),
		ReadHeaderTimeout: adminReadHeaderTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("ingress listening", "version", version, "addr", lim.Addr().String(), "admin_addr", adminLn.Addr().String(),
		"admin_token", adminToken != "", "api_keys", keys != nil, "rate_limit", cfg.RateLimit, "rate_burst", cfg.RateBurst,
		"broker", broker.Redact(cfg.AMQPURL), "exchange", topo.Exchange, "queue", topo.Queue, "max_connections", cfg.MaxConnections)

	// The broker loop does not follow ctx: it is stopped after the HTTP server
	// has drained, below.
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBroker()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := api.Serve(lim); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve admin http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done() // a signal, or another part failed
		log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout.String())
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		err := api.Shutdown(shutdownCtx)
		stopBroker()
		// The admin server last: while the public one drains, its /readyz
		// says "shutting down" and its metrics show the drain.
		err = errors.Join(err, adminSrv.Shutdown(shutdownCtx))
		if err != nil {
			return fmt.Errorf("shut down http: %w", err)
		}
		return nil
	})
	if keys != nil && cfg.APIKeysPollInterval > 0 {
		g.Go(func() error {
			keys.Watch(gctx, cfg.APIKeysPollInterval)
			return nil
		})
	}
	g.Go(func() error {
		reloadOnSIGHUP(gctx, hup, keys, log)
		return nil
	})
	g.Go(func() error {
		d := broker.Dialer{URL: cfg.AMQPURL, TLS: brokerTLS, Name: "relay-ingress", Log: log, OnConnected: m.BrokerConnected,
			OnNode: func(n string) { node.Store(&n) }}
		if err := d.Run(brokerCtx, session(topo, pub, evPub, queues, log)); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		queues.Run(brokerCtx)
		return nil
	})
	if idx != nil {
		g.Go(func() error {
			idx.TrimEvery(brokerCtx, cfg.IndexMaxAge, index.TrimInterval(cfg.IndexMaxAge), log.With("component", "index"))
			return nil
		})
		// A connection of its own: consuming the stream must neither wait
		// behind a publishing connection blocked by an alarm nor disturb it.
		g.Go(func() error {
			ilog := log.With("component", "index")
			d := broker.Dialer{URL: cfg.AMQPURL, TLS: brokerTLS, Name: "relay-ingress-index", Log: ilog}
			return d.Run(brokerCtx, func(ctx context.Context, conn *amqp.Connection) error {
				if err := topo.Declare(conn); err != nil {
					return fmt.Errorf("declare topology: %w", err)
				}
				return idx.Consume(ctx, conn, topo.Events, ilog)
			})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("ingress stopped")
	return nil
}

// reloadOnSIGHUP reloads keys on every SIGHUP (hup) until ctx ends. A
// reload that fails keeps the old keys (apikey.File logs it). Without keys a
// SIGHUP is logged and ignored.
func reloadOnSIGHUP(ctx context.Context, hup <-chan os.Signal, keys *apikey.File, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if keys == nil {
				log.Info("SIGHUP: no INGRESS_API_KEYS_FILE to reload")
				continue
			}
			log.Info("SIGHUP: reloading API keys", "file", keys.Path())
			_ = keys.Reload() // a failure is logged, and the old keys stay
		}
	}
}

// session runs the ingress on one broker connection: declare the topology,
// publish (and poll queue depths) until the connection is lost or ctx ends.
// evPub (nil with events off) publishes the accepted events; a damage
// to either publisher's channels ends the session, as the connection's loss
// does, so that the next one declares the topology again.
func session(topo *topology.Topology, pub, evPub *broker.Publisher, queues *pkgmetrics.Queues, log *slog.Logger) broker.Session {
	return func(ctx context.Context, conn *amqp.Connection) error {
		if err := topo.Declare(conn); err != nil {
			var mismatch *topology.MismatchError
			if errors.As(err, &mismatch) {
				return broker.Fatal(err) // an operator must resolve it; retrying cannot
			}
			return fmt.Errorf("declare topology: %w", err)
		}
		if err := pub.Attach(conn); err != nil {
			return err
		}
		defer pub.Detach()
		broken := pub.Broken()
		if evPub != nil {
			if err := evPub.Attach(conn); err != nil {
				return err
			}
			defer evPub.Detach()
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			broken = broker.Either(sctx, broken, evPub.Broken())
		}
		// Closing the connection before the channels makes Detach quick even
		// when an alarm blocks it (the broker reads nothing from a blocked
		// connection). Publishes still waiting fail and their requests are
		// answered 503; at shutdown none is left, as the HTTP server drains
		// first.
		defer broker.CloseConn(conn)
		queues.Attach(conn)
		defer queues.Detach()
		log.Info("ready to accept registrations")
		return broker.Wait(ctx, conn, broken, func(blocked bool, reason string) {
			if evPub != nil {
				evPub.SetBlocked(blocked)
			}
			if pub.Blocked() == blocked {
				return
			}
			pub.SetBlocked(blocked)
			if blocked {
				log.Warn("broker blocked publishing (resource alarm): answering 503 until it clears", "reason", reason)
			} else {
				log.Info("broker unblocked publishing")
			}
		})
	}
}
