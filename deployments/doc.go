// Package deployments holds no code: its test checks that the Kubernetes
// manifests in kubernetes/ agree with each other and with the services'
// configuration code (the environment variables they read, the ports they
// listen on, the timeouts their grace periods are sized against), that
// docker-compose.yml, .env.example and prometheus/prometheus.yml agree, and
// that both keep their secrets where they belong: in Secrets and a .env,
// never in a manifest, and /metrics off the public port.
//
// It is a module of its own so that the manifests' test runs with the rest
// (make test) without adding a YAML parser to any service's dependencies.
package deployments
