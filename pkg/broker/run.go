package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/config"
	"github.com/railco/relay/pkg/tlsconfig"
)

// CheckTLS reports TLS files that cannot work with amqpURL: a certificate
// without its key, or files given for a plain amqp:// URL, which would run
// unencrypted while the operator believes otherwise.
func CheckTLS(amqpURL string, f tlsconfig.Files) error {
	if err := f.Validate("AMQP"); err != nil {
		return err
	}
	uris, err := ParseURLs(amqpURL)
	if err != nil || !f.Set() {
		return nil // a bad URL is reported where it is parsed
	}
	for _, uri := range uris {
		if uri.Scheme != "amqps" {
			return errors.New("AMQP_CA_FILE, AMQP_CLIENT_CERT_FILE and AMQP_CLIENT_KEY_FILE need amqps:// in AMQP_URL (every URL of it): with amqp:// the connection is not encrypted")
		}
	}
	return nil
}

// LoadTLSFiles reads the files of the broker connection's TLS (used with an
// amqps:// AMQP_URL): AMQP_CA_FILE, AMQP_CLIENT_CERT_FILE, AMQP_CLIENT_KEY_FILE.
// Every service and relayctl read them the same way.
func LoadTLSFiles(l *config.Loader) tlsconfig.Files {
	return tlsconfig.Files{
		CA:   l.String("AMQP_CA_FILE", ""),
		Cert: l.String("AMQP_CLIENT_CERT_FILE", ""),
		Key:  l.String("AMQP_CLIENT_KEY_FILE", ""),
	}
}

// Reconnect delays: the first retry comes quickly (a broker restart takes a
// few seconds), later ones spread out so a long outage costs little, and jitter
// keeps a fleet of replicas from reconnecting in lockstep.
const (
	reconnectInitial = 250 * time.Millisecond
	reconnectMax     = 15 * time.Second
	reconnectJitter  = 0.5
	// stableSession is how long a session must last before the backoff resets.
	stableSession = 30 * time.Second
	// heartbeat detects dead TCP connections (a cut network sends no FIN) and
	// hung nodes: the library gives up on a connection that has been silent
	// for three heartbeats, 15 s, and the next URL gets its turn.
	heartbeat = 5 * time.Second
)

// Session uses one connection until it is lost or ctx ends. It returns nil
// when ctx ended and it shut down cleanly, an error otherwise. Wrap an error
// with Fatal to stop Run instead of reconnecting.
type Session func(ctx context.Context, conn *amqp.Connection) error

// Dialer says where and as whom to connect.
type Dialer struct {
	// URL is amqp://user:pass@host:port/vhost (or amqps://), or several
	// such URLs separated by commas: the nodes of one cluster. Run starts at
	// a random one and moves to the next on every reconnect.
	URL  string
	TLS  *tls.Config  // for amqps: whom to trust, which client certificate; nil: the system's CAs
	Name string       // connection_name, shown in the management UI
	Log  *slog.Logger // connection events; the password is never logged
	// OnConnected, if set, is told when a connection comes up (true) and goes away (false).
	OnConnected func(bool)
	// OnNode, if set, is told the node (host:port) of each new connection,
	// and "" when it goes away.
	OnNode func(node string)
}

// Run connects and runs session, reconnecting after every loss, until ctx
// ends (returns nil) or session returns a Fatal error (returns it).
func (d Dialer) Run(ctx context.Context, session Session) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(reconnectInitial),
		backoff.WithMaxInterval(reconnectMax),
		backoff.WithRandomizationFactor(reconnectJitter),
		backoff.WithMaxElapsedTime(0), // forever
	)
	ns, err := newNodes(d.URL)
	if err != nil {
		return fmt.Errorf("invalid AMQP_URL: %w", err)
	}
	for {
		raw, uri := ns.take()
		where := Redact(raw)
		conn, err := dial(raw, uri, amqp.Config{
			Heartbeat:       heartbeat,
			Properties:      amqp.Table{"connection_name": d.Name},
			TLSClientConfig: d.TLS.Clone(),                                // the library sets its ServerName: never share one
			Dial:            CombineWrites(amqp.DefaultDial(dialTimeout)), // one write(2) for many frames: see combine.go
		})
		if err == nil {
			node := Node(uri)
			d.Log.Info("broker connected", "broker", where, "node", node, "cluster", clusterName(conn))
			d.notify(true, node)
			started := time.Now()
			err = session(ctx, conn)
			d.notify(false, "")
			_ = CloseConn(conn) // may already be closed; nothing to do about a failure here
			if ctx.Err() != nil {
				return nil
			}
			var fatal *fatalError
			if errors.As(err, &fatal) {
				return fatal.err
			}
			if time.Since(started) > stableSession {
				b.Reset()
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := b.NextBackOff()
		d.Log.Warn("broker connection lost; reconnecting", "broker", where, "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (d Dialer) notify(up bool, node string) {
	if d.OnConnected != nil {
		d.OnConnected(up)
	}
	if d.OnNode != nil {
		d.OnNode(node)
	}
}

// clusterName is the cluster the broker says it belongs to, or "".
func clusterName(conn *amqp.Connection) string {
	name, _ := conn.Properties["cluster_name"].(string)
	return name
}

type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// Fatal marks err as one that reconnecting cannot cure (a topology conflict, a
// bad configuration): Run returns it instead of trying again.
func Fatal(err error) error { return &fatalError{err: err} }

// closeTimeout bounds the close handshake: a connection blocked by a
// resource alarm is not read by the broker, so its close-ok never comes.
const closeTimeout = 2 * time.Second

// CloseConn closes conn, waiting closeTimeout at most for the broker's
// answer before it drops the socket. Close a publishing connection this way
// before its channels: a blocked connection answers neither.
func CloseConn(conn *amqp.Connection) error {
	return conn.CloseDeadline(time.Now().Add(closeTimeout))
}

// ErrConnectionLost is returned by Wait when the broker closed the connection.
var ErrConnectionLost = errors.New("broker connection lost")

// ErrChannelLost is returned by Wait when broken closed: a channel the
// session depends on is gone although the connection is up.
var ErrChannelLost = errors.New("broker closed a channel")

// Either returns a channel that closes once a or b closes, for Wait's
// broken when a session depends on two publishers. Its goroutine ends
// then, or when ctx ends (the channel then stays open): pass a context
// that ends with the session.
func Either(ctx context.Context, a, b <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		select {
		case <-a:
			close(out)
		case <-b:
			close(out)
		case <-ctx.Done():
		}
	}()
	return out
}

// Wait blocks until conn closes (returns an error wrapping ErrConnectionLost),
// broken closes (ErrChannelLost; pass Publisher.Broken, or nil) or ctx ends
// (returns nil). While it waits it reports flow-control blocks (memory or
// disk alarms) to onBlocked, if set.
func Wait(ctx context.Context, conn *amqp.Connection, broken <-chan struct{}, onBlocked func(blocked bool, reason string)) error {
	// Buffered so the library never waits on us; both are drained until closed.
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	defer func() {
		if onBlocked != nil {
			onBlocked(false, "")
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-broken:
			return ErrChannelLost
		case err, ok := <-closed:
			if !ok || err == nil {
				return ErrConnectionLost
			}
			return fmt.Errorf("%w: %w", ErrConnectionLost, err)
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			if onBlocked != nil {
				onBlocked(b.Active, b.Reason)
			}
		}
	}
}
