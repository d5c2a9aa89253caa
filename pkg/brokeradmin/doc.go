// Package brokeradmin talks to RabbitMQ's management HTTP API for the few
// things AMQP cannot do, such as policies.
//
// relay uses a policy, not a queue argument, for settings an operator may
// want to change on a running system: RabbitMQ refuses to redeclare a queue
// with other arguments (PRECONDITION_FAILED), but applies a changed policy at
// once. The management plugin (rabbitmq_management) must be enabled.
//
// New finds the API from the AMQP URL (same host, port 15672, or https on
// 15671 for amqps, same user and virtual host) unless told where it is; the
// password never appears in its errors or in String.
package brokeradmin
