// Command forwarder delivers stored registrations to the Catering backend,
// retrying through RabbitMQ's delay tiers and dead-lettering what cannot be
// delivered. See README.md for its configuration.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/railco/relay/services/forwarder/internal/metrics"
)

// version is set at build time: make build and the Dockerfiles pass
// -ldflags "-X main.version=...". The start-up log line and
// relay_build_info carry it.
var version = "dev"

func init() { metrics.Version = version }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		slog.Error("forwarder stopped", "err", err)
		os.Exit(1)
	}
}
