// Package e2e runs relay's real binaries as processes against a real RabbitMQ
// and checks what a user would see: the seed's request accepted, and the exact
// bytes arriving at the Catering backend.
package e2e
