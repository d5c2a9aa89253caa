package topology

import (
	"errors"
	"fmt"
	"regexp"

	amqp "github.com/rabbitmq/amqp091-go"
)

// MismatchError says that a queue or exchange already exists with arguments
// other than the ones relay declares. The broker refuses the declaration
// (PRECONDITION_FAILED); relay cannot fix it by itself without risking the
// messages inside, so an operator must.
type MismatchError struct {
	Kind   string // "queue" or "exchange"
	Name   string
	Arg    string // the argument that differs, e.g. "x-message-ttl"
	Detail string // the broker's description of the two values
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s %q already exists with a different %q (%s): delete or migrate the %s, or change the configuration to match it",
		e.Kind, e.Name, e.Arg, e.Detail, e.Kind)
}

// inequivalent matches RabbitMQ's text, e.g. "PRECONDITION_FAILED - inequivalent
// arg 'x-message-ttl' for queue 'q' in vhost '/': received the value '1000' of
// type 'signedint' but current is none".
var inequivalent = regexp.MustCompile(`inequivalent arg '([^']+)' for (?:queue|exchange) '[^']*' in vhost '[^']*': (.*)$`)

func declareError(kind, name string, err error) error {
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.PreconditionFailed {
		if m := inequivalent.FindStringSubmatch(amqpErr.Reason); m != nil {
			return &MismatchError{Kind: kind, Name: name, Arg: m[1], Detail: m[2]}
		}
		return &MismatchError{Kind: kind, Name: name, Arg: "arguments", Detail: amqpErr.Reason}
	}
	return fmt.Errorf("declare %s %q: %w", kind, name, err)
}
