module github.com/railco/relay/test/e2e

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.1
	github.com/rabbitmq/amqp091-go v1.16.0
	github.com/railco/relay/pkg v0.0.0
)

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	github.com/chromedp/cdproto v0.160.1 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace github.com/railco/relay/pkg => ../../pkg
