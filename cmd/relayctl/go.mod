module github.com/railco/relay/cmd/relayctl

go 1.26.0

require (
	github.com/creack/pty v1.1.24
	github.com/rabbitmq/amqp091-go v1.16.0
	github.com/railco/relay/pkg v0.0.0
	go.uber.org/goleak v1.3.0
	golang.org/x/term v0.46.0
)

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace github.com/railco/relay/pkg => ../../pkg
