// Command catering-stub is an in-memory Catering backend for `make run`,
// demos, the end-to-end tests and the benchmarks. It is configured through
// environment variables (see internal/config) and changed at run time
// through PUT /admin/mode (see internal/stub).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	pkgconfig "github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/logging"
	"github.com/railco/relay/services/catering-stub/internal/config"
	"github.com/railco/relay/services/catering-stub/internal/stub"
	"github.com/railco/relay/services/catering-stub/internal/webhook"
)

// shutdownTimeout bounds how long requests in flight (at most one
// STUB_LATENCY each) may hold up a stop; docker stops with SIGKILL after 10 s.
const shutdownTimeout = 8 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		slog.Error("catering stub stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the stub until ctx is done, then shuts down gracefully and
// returns nil. Logs go to stdout.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log, err := logging.New(stdout, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return fmt.Errorf("build logger: %w", err)
	}
	verifier, err := webhook.NewVerifier(string(cfg.SigningSecret)) // validated already
	if err != nil {
		return fmt.Errorf("STUB_SIGNING_SECRET: %w", err)
	}
	srv, err := stub.New(stub.Options{Mode: stub.ModeFromConfig(cfg), Quiet: cfg.Quiet, Logger: log, Verifier: verifier})
	if err != nil {
		return err
	}

	// Listen before serving so that the bound address (port 0 picks one) is
	// known and published before anyone is told to connect.
	ln, err := pkgconfig.Listen(cfg.Addr, cfg.AddrFile)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if cfg.AddrFile != "" {
		// A stale file would point the next test run at a dead port.
		defer func() { _ = os.Remove(cfg.AddrFile) }()
	}
	log.Info("catering stub listening", "addr", addr, "mode", srv.Mode(), "quiet", cfg.Quiet, "verifies_signatures", verifier != nil)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	log.Info("catering stub shutting down")
	// The parent ctx is already done; shutdown gets its own deadline.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	// Serve returns as soon as Shutdown starts; waiting for it as well keeps
	// the goroutine from outliving run.
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(shutdownErr, fmt.Errorf("serve on %s: %w", addr, err))
	}
	if shutdownErr != nil {
		return shutdownErr
	}
	log.Info("catering stub stopped")
	return nil
}
