package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/railco/relay/pkg/broker"
	pkgconfig "github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/logging"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/topology"

	"github.com/railco/relay/services/ingress/internal/config"
	"github.com/railco/relay/services/ingress/internal/connlimit"
	"github.com/railco/relay/services/ingress/internal/httpapi"
	"github.com/railco/relay/services/ingress/internal/metrics"
)

// reclaimIdleAfter is how long a connection must have been idle before it is
// closed to admit a new one at INGRESS_MAX_CONNECTIONS. Without it, under an
// overload a busy client's keep-alive connection, idle for a moment between
// two requests, or a new connection whose request the loaded server had not
// read yet, was closed under the client, who saw a reset or EOF instead of
// an answer (make bench, phase 3: docs/BENCHMARKS.md); with it, the overload
// gets 503s. A flood's connections stay idle far longer.
const reclaimIdleAfter = time.Second

// run serves until ctx ends, then shuts down gracefully and returns nil; it
// returns an error when the configuration is invalid, the address cannot be
// bound, or the broker's topology conflicts with ours.
//
// Shutdown order matters: stop accepting, wait for every in-flight request
// to get its broker confirm and its answer, and only then close the broker
// connection, which would fail confirms still on their way.
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
	topo := topology.New(cfg.Topology)
	pub := broker.NewPublisher(cfg.PublisherChannels)
	queues := pkgmetrics.NewQueues(topo, cfg.Metrics.QueueInterval)
	m := metrics.New(pub.Blocked, queues)

	ln, err := pkgconfig.Listen(cfg.Addr, cfg.AddrFile)
	if err != nil {
		return fmt.Errorf("INGRESS_ADDR, INGRESS_ADDR_FILE: %w", err)
	}
	// Each open connection costs memory, idle or not. At the limit, the
	// connection idle the longest is closed to admit a new one, and when none
	// has been idle for reclaimIdleAfter the new one is answered 503 at once:
	// nobody waits for a slot.
	lim := connlimit.New(ln, connlimit.Options{
		Max: cfg.MaxConnections, ReclaimAfter: reclaimIdleAfter, RetryAfter: cfg.RetryAfter, Observer: m, Log: log,
	})
	api := httpapi.New(cfg, pub, topo, log, httpapi.WithObserver(m), httpapi.WithMetrics(m.Handler()),
		httpapi.WithConnState(lim.ConnState))
	log.Info("ingress listening", "addr", lim.Addr().String(), "broker", broker.Redact(cfg.AMQPURL),
		"exchange", topo.Exchange, "queue", topo.Queue, "max_connections", cfg.MaxConnections)

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
		<-gctx.Done() // a signal, or another part failed
		log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout.String())
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		err := api.Shutdown(shutdownCtx)
		stopBroker()
		if err != nil {
			return fmt.Errorf("shut down http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		d := broker.Dialer{URL: cfg.AMQPURL, TLS: brokerTLS, Name: "relay-ingress", Log: log, OnConnected: m.BrokerConnected}
		if err := d.Run(brokerCtx, session(topo, pub, queues, log)); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		queues.Run(brokerCtx)
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("ingress stopped")
	return nil
}

// session runs the ingress on one broker connection: declare the topology,
// publish (and poll queue depths) until the connection is lost or ctx ends.
func session(topo *topology.Topology, pub *broker.Publisher, queues *pkgmetrics.Queues, log *slog.Logger) broker.Session {
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
		// Closing the connection before the channels makes Detach quick even
		// when an alarm blocks it (the broker reads nothing from a blocked
		// connection). Publishes still waiting fail and their requests are
		// answered 503; at shutdown none is left, as the HTTP server drains
		// first.
		defer broker.CloseConn(conn)
		queues.Attach(conn)
		defer queues.Detach()
		log.Info("ready to accept registrations")
		return broker.Wait(ctx, conn, pub.Broken(), func(blocked bool, reason string) {
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
