module github.com/railco/relay/test/e2e

go 1.26.0

require (
	github.com/rabbitmq/amqp091-go v1.16.0
	github.com/railco/relay/pkg v0.0.0
)

require github.com/cenkalti/backoff/v4 v4.3.0 // indirect

replace github.com/railco/relay/pkg => ../../pkg
