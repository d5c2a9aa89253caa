// Command ingress accepts catering registrations over HTTP and stores each in
// RabbitMQ before answering 202, so that none is lost while the Catering
// backend is down.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/railco/relay/services/ingress/internal/metrics"
)

// version is set at build time: make build and the Dockerfiles pass
// -ldflags "-X main.version=...". The start-up log line and
// relay_build_info carry it.
var version = "dev"

func init() { metrics.Version = version }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		slog.Error("ingress stopped", "err", err)
		os.Exit(1)
	}
}
