package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/railco/relay/pkg/broker"
	pkgconfig "github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/logging"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/topology"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/config"
	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
	"github.com/railco/relay/services/forwarder/internal/metrics"
	"github.com/railco/relay/services/forwarder/internal/redrive"
)

// run wires the forwarder and blocks until ctx ends and everything in flight
// is settled (nil), or something fails for good (the error).
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log, err := logging.New(stdout, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log = log.With("service", "forwarder")

	topo := topology.New(cfg.Topology)
	queues := pkgmetrics.NewQueues(topo, cfg.Metrics.QueueInterval)
	m := metrics.New(queues)
	pub := broker.NewPublisher(cfg.PublisherChannels)
	client := delivery.NewClient(cfg.Endpoint, cfg.Concurrency)
	defer client.Close()
	cfg.Breaker.OnChange = m.CircuitChanged
	brk := breaker.New(cfg.Breaker, log)
	defer brk.Stop()
	fwd := forwarder.New(forwarder.Options{
		Concurrency:     cfg.Concurrency,
		Prefetch:        cfg.Prefetch,
		DeliveryTimeout: cfg.DeliveryTimeout,
		PublishTimeout:  cfg.PublishTimeout,
		NonRetryable:    cfg.NonRetryable,
		HoldMax:         cfg.HoldMax,
		Observer:        m,
	}, topo, pub, client, brk, log)

	var consuming atomic.Bool
	session := func(ctx context.Context, conn *amqp.Connection) error {
		if err := topo.Declare(conn); err != nil {
			var mismatch *topology.MismatchError
			if errors.As(err, &mismatch) {
				return broker.Fatal(err)
			}
			return err
		}
		if err := pub.Attach(conn); err != nil {
			return err
		}
		defer pub.Detach() // after Consume: in-flight moves still need it
		queues.Attach(conn)
		defer queues.Detach()
		// Consume until ctx ends, the connection is lost (Consume sees that on
		// its channel) or a publishing channel breaks (Wait sees that).
		consumeCtx, stop := context.WithCancel(ctx)
		defer stop()
		lost := make(chan error, 1)
		go func() {
			lost <- broker.Wait(consumeCtx, conn, pub.Broken(), func(blocked bool, reason string) {
				pub.SetBlocked(blocked)
				if blocked {
					log.Warn("broker blocked the connection", "reason", reason)
				}
			})
			stop()
		}()
		consuming.Store(true)
		defer consuming.Store(false)
		err := fwd.Consume(consumeCtx, conn)
		stop()
		if waitErr := <-lost; waitErr != nil && err == nil {
			return waitErr // drained gracefully; now reconnect
		}
		return err
	}

	admin, err := pkgconfig.Listen(cfg.AdminAddr, getenv("FORWARDER_ADMIN_ADDR_FILE"))
	if err != nil {
		return fmt.Errorf("FORWARDER_ADMIN_ADDR, FORWARDER_ADMIN_ADDR_FILE: %w", err)
	}
	srv := &http.Server{Handler: adminHandler(&consuming, brk, m.Handler()), ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		d := broker.Dialer{URL: cfg.AMQPURL, Name: "relay-forwarder", Log: log, OnConnected: m.BrokerConnected}
		err := d.Run(gctx, session)
		log.Info("broker loop stopped")
		return err
	})
	g.Go(func() error {
		queues.Run(gctx)
		return nil
	})
	if cfg.RedriveInterval > 0 {
		// A connection of its own: its rounds run only while connected, and
		// a failed round cannot disturb the consumer's session.
		rlog := log.With("component", "redrive")
		rd := redrive.New(redrive.Options{Interval: cfg.RedriveInterval, MaxRedrives: cfg.RedriveMax}, topo, rlog)
		g.Go(func() error {
			d := broker.Dialer{URL: cfg.AMQPURL, Name: "relay-forwarder-redrive", Log: rlog}
			return d.Run(gctx, rd.Run)
		})
	}
	g.Go(func() error {
		if err := srv.Serve(admin); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
	log.Info("forwarder started", "endpoint", cfg.Endpoint, "admin", admin.Addr().String(),
		"max_attempts", topo.MaxAttempts, "queue", topo.Queue, "dead_queue", topo.DeadQueue)
	err = g.Wait()
	log.Info("forwarder stopped")
	return err
}

// adminHandler serves liveness, readiness and the metrics. A forwarder paused
// by an open breaker is ready: it is doing what it should while the backend
// is down.
func adminHandler(consuming *atomic.Bool, brk *breaker.Breaker, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		circuit := brk.State().String()
		if consuming.Load() {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "consumer": "consuming", "circuit": circuit})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "consumer": "disconnected", "circuit": circuit})
	})
	mux.Handle("GET /metrics", metrics)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
