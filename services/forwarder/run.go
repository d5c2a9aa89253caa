package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokeradmin"
	pkgconfig "github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/events"
	"github.com/railco/relay/pkg/logging"
	pkgmetrics "github.com/railco/relay/pkg/metrics"
	"github.com/railco/relay/pkg/profiling"
	"github.com/railco/relay/pkg/topology"
	"github.com/railco/relay/services/forwarder/internal/breaker"
	"github.com/railco/relay/services/forwarder/internal/config"
	"github.com/railco/relay/services/forwarder/internal/delivery"
	"github.com/railco/relay/services/forwarder/internal/forwarder"
	"github.com/railco/relay/services/forwarder/internal/metrics"
	"github.com/railco/relay/services/forwarder/internal/redrive"
	"github.com/railco/relay/services/forwarder/internal/signing"
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
	topo.Log = log
	queues := pkgmetrics.NewQueues(topo, cfg.Metrics.QueueInterval)
	m := metrics.New(queues)
	pub := broker.NewPublisher(cfg.PublisherChannels)
	pub.SetOnReplaced(broker.LogReplaced(log.With("component", "publisher"), "moves and events"))
	backendTLS, err := cfg.BackendTLS.Config("")
	if err != nil {
		return fmt.Errorf("configuration: CATERING_CA_FILE, CATERING_CLIENT_CERT_FILE, CATERING_CLIENT_KEY_FILE: %w", err)
	}
	signer, err := signing.New(string(cfg.SigningSecret)) // validated already
	if err != nil {
		return fmt.Errorf("configuration: CATERING_SIGNING_SECRET: %w", err)
	}
	client := delivery.New(delivery.Options{Endpoint: cfg.Endpoint, Conns: cfg.Concurrency, TLS: backendTLS, Signer: signer})
	defer client.Close()
	cfg.Breaker.OnChange = m.CircuitChanged
	brk := breaker.New(cfg.Breaker, log)
	defer brk.Stop()
	brokerTLS, err := cfg.BrokerTLS.Config("")
	if err != nil {
		return fmt.Errorf("configuration: AMQP_CA_FILE, AMQP_CLIENT_CERT_FILE, AMQP_CLIENT_KEY_FILE: %w", err)
	}
	admin, err := brokeradmin.New(cfg.AMQPURL, cfg.ManagementURL)
	if err != nil && !errors.Is(err, brokeradmin.ErrOff) {
		return fmt.Errorf("configuration: RABBITMQ_MANAGEMENT_URL: %w", err)
	}
	if admin != nil {
		admin.UseTLS(brokerTLS) // the broker's CA signs its management API too
	}
	fwd := forwarder.New(forwarder.Options{
		Concurrency:     cfg.Concurrency,
		Prefetch:        cfg.Prefetch,
		DeliveryTimeout: cfg.DeliveryTimeout,
		PublishTimeout:  cfg.PublishTimeout,
		NonRetryable:    cfg.NonRetryable,
		HoldMax:         cfg.HoldMax,
		Observer:        m,
		// A delivered message holds its prefetch slot until its events are
		// confirmed: the linger ends once a quarter of the slots wait.
		Events: events.NewEmitter(pub, topo.Events, "forwarder", cfg.PublishTimeout).SetLinger(cfg.EventsLinger).SetFlushAt(max(1, cfg.Prefetch/4)),
	}, topo, pub, client, brk, log)

	var consuming atomic.Bool
	// Two connections: RabbitMQ blocks a connection that publishes during a
	// resource alarm and then reads nothing from it, acks included. Consuming
	// on a connection that never publishes keeps deliveries and their acks
	// flowing while retry and dead-letter moves wait.
	publishing := func(ctx context.Context, conn *amqp.Connection) error {
		if err := declare(topo, conn); err != nil {
			return err
		}
		// Beside the session, not before it: an unreachable management API
		// must not delay delivery.
		var limits sync.WaitGroup
		defer limits.Wait()
		limits.Go(func() { applyLimits(ctx, topo, admin, log, m.QueueLimitApplied) })
		if err := pub.Attach(conn); err != nil {
			return err
		}
		defer pub.Detach()
		// Closing the connection before the channels makes Detach quick even
		// when an alarm blocks it (the broker reads nothing from a blocked
		// connection). Moves still waiting for a confirm then fail and are
		// parked until the next session; at shutdown none is left, as the
		// consumer stops first.
		defer broker.CloseConn(conn)
		return broker.Wait(ctx, conn, pub.Broken(), func(blocked bool, reason string) {
			pub.SetBlocked(blocked)
			if blocked {
				log.Warn("broker blocked the publishing connection (resource alarm): retries and dead letters wait; deliveries go on", "reason", reason)
			}
		})
	}
	consume := func(ctx context.Context, conn *amqp.Connection) error {
		if err := declare(topo, conn); err != nil {
			return err
		}
		queues.Attach(conn)
		defer queues.Detach()
		for {
			// Consume only while moves can be published: a failed move
			// requeues the message, and it would come straight back.
			broken, err := pub.WaitAttached(ctx)
			if err != nil {
				return nil
			}
			consumeCtx, stop := context.WithCancel(ctx)
			go func() {
				select {
				case <-broken:
					stop()
				case <-consumeCtx.Done():
				}
			}()
			consuming.Store(true)
			err = fwd.Consume(consumeCtx, conn)
			consuming.Store(false)
			stop()
			if err != nil || ctx.Err() != nil {
				return err
			}
			log.Warn("publishing connection lost: consuming paused until it is back")
		}
	}

	adminLn, err := pkgconfig.Listen(cfg.AdminAddr, getenv("FORWARDER_ADMIN_ADDR_FILE"))
	if err != nil {
		return fmt.Errorf("FORWARDER_ADMIN_ADDR, FORWARDER_ADMIN_ADDR_FILE: %w", err)
	}
	if cfg.PProf {
		log.Warn("FORWARDER_PPROF=on: Go profiles are served at /debug/pprof/ on the admin address")
	}
	nodes := newBrokerNodes()
	srv := &http.Server{Handler: adminHandler(&consuming, brk, m.Handler(), string(cfg.AdminToken), cfg.PProf, nodes), ReadHeaderTimeout: 5 * time.Second}

	// The publishing connection outlives the consumer: at shutdown the
	// consumer settles what it holds, which may need a move.
	pubCtx, stopPublishing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPublishing()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		d := broker.Dialer{URL: cfg.AMQPURL, TLS: brokerTLS, Name: "relay-forwarder", Log: log, OnConnected: m.BrokerConnected,
			OnNode: func(n string) { nodes.consume.Store(&n) }}
		err := d.Run(gctx, consume)
		log.Info("consumer stopped")
		stopPublishing()
		return err
	})
	g.Go(func() error {
		d := broker.Dialer{URL: cfg.AMQPURL, TLS: brokerTLS, Name: "relay-forwarder-publish", Log: log.With("component", "publisher"),
			OnNode: func(n string) { nodes.publish.Store(&n) }}
		return d.Run(pubCtx, publishing)
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
			d := broker.Dialer{URL: cfg.AMQPURL, TLS: brokerTLS, Name: "relay-forwarder-redrive", Log: rlog}
			return d.Run(gctx, rd.Run)
		})
	}
	g.Go(func() error {
		if err := srv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
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
	signatures := 0
	if signer != nil {
		signatures = signer.Keys()
	}
	log.Info("forwarder started", "version", version, "endpoint", config.RedactURL(cfg.Endpoint), "admin", adminLn.Addr().String(),
		"max_attempts", topo.MaxAttempts, "queue", topo.Queue, "dead_queue", topo.DeadQueue,
		"signing_secrets", signatures, "backend_ca", cfg.BackendTLS.CA != "", "client_certificate", cfg.BackendTLS.Cert != "",
		"admin_token", cfg.AdminToken != "")
	if signer == nil {
		log.Warn("CATERING_SIGNING_SECRET is not set: deliveries are not signed, and the backend cannot tell relay's requests from anyone else's")
	}
	err = g.Wait()
	log.Info("forwarder stopped")
	return err
}

// declare declares the topology; a conflict with what exists is fatal.
func declare(topo *topology.Topology, conn *amqp.Connection) error {
	if err := topo.Declare(conn); err != nil {
		var mismatch *topology.MismatchError
		if errors.As(err, &mismatch) {
			return broker.Fatal(err)
		}
		return fmt.Errorf("declare topology: %w", err)
	}
	return nil
}

// applyLimits puts the main queue's limit policy on the broker (or removes it
// when no limit is set), through the management API. Failing that, relay
// still runs, with an unbounded queue: it says so, and applied reports it.
func applyLimits(ctx context.Context, topo *topology.Topology, admin *brokeradmin.Client, log *slog.Logger, applied func(bool)) {
	name, policy, limited := topo.LimitPolicy()
	if admin == nil {
		log.Info("RABBITMQ_MANAGEMENT_URL=off: the main queue's limit policy is left to the operator", "policy", name)
		applied(false)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, limitsTimeout)
	defer cancel()
	if !limited {
		if err := admin.DeletePolicy(ctx, name); err != nil {
			log.Warn("could not remove the main queue's limit policy", "policy", name, "err", err)
		}
		applied(false)
		return
	}
	if err := admin.PutPolicy(ctx, name, policy); err != nil {
		log.Warn("main queue NOT bounded: could not apply its limit policy; enable the management plugin (rabbitmq-plugins enable rabbitmq_management), set RABBITMQ_MANAGEMENT_URL, or apply the policy yourself",
			"policy", name, "pattern", policy.Pattern, "definition", policy.Definition, "err", err)
		applied(false)
		return
	}
	log.Info("main queue bounded", "policy", name, "queue", topo.Queue, "definition", policy.Definition, "management", admin.String())
	applied(true)
}

// limitsTimeout bounds applying the limit policy at the start of a session.
const limitsTimeout = 5 * time.Second

// adminHandler serves liveness, readiness and the metrics, and with pprof
// the Go profiles under /debug/pprof/ (FORWARDER_PPROF). A forwarder paused
// by an open breaker is ready: it is doing what it should while the backend
// is down. With a token, everything but the health checks (which the
// kubelet calls without one) wants it: see requireToken.
func adminHandler(consuming *atomic.Bool, brk *breaker.Breaker, metrics http.Handler, token string, pprof bool, nodes *brokerNodes) http.Handler {
	open := http.NewServeMux()
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	open.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := map[string]string{"status": "ready", "consumer": "consuming", "circuit": brk.State().String()}
		nodes.show(r)
		if consuming.Load() {
			writeJSON(w, http.StatusOK, r)
			return
		}
		r["status"], r["consumer"] = "not ready", "disconnected"
		writeJSON(w, http.StatusServiceUnavailable, r)
	})
	operational := http.NewServeMux()
	operational.Handle("GET /metrics", metrics)
	if pprof {
		profiling.Mount(operational)
	}
	open.Handle("/", requireToken(token, operational))
	return open
}

// brokerNodes are the broker nodes (host:port) the forwarder's consuming and
// publishing connections are on, for /readyz: in a cluster they may differ.
type brokerNodes struct{ consume, publish atomic.Pointer[string] }

func newBrokerNodes() *brokerNodes {
	n := &brokerNodes{}
	n.consume.Store(new(string))
	n.publish.Store(new(string))
	return n
}

// show adds the nodes to a /readyz answer; those not connected are left out.
func (n *brokerNodes) show(r map[string]string) {
	if n == nil {
		return
	}
	if c := *n.consume.Load(); c != "" {
		r["broker"] = c
	}
	if p := *n.publish.Load(); p != "" {
		r["publish_broker"] = p
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
