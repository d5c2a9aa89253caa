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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		slog.Error("ingress stopped", "err", err)
		os.Exit(1)
	}
}
