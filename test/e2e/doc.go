// Package e2e runs relay's real binaries as processes against a real RabbitMQ
// and checks what a user would see: the seed's request accepted, and the exact
// bytes arriving at the Catering backend.
//
// Two suites behind build tags break things on purpose, on RabbitMQ nodes of
// their own (root, Debian's rabbitmq-server): the chaos suite (-tags chaos,
// make test-chaos) on one private node, the cluster suite (-tags cluster,
// make test-cluster) on a private three-node cluster, AMQP_URL listing all
// three nodes.
package e2e
