package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dial is amqp.DialConfig that says why a node closed a connection while it
// was opening. The library loses the reason when its reader sees the close
// before the opening sends its first frame: it then answers only "channel/
// connection is not open" (ErrClosed), or "use of closed network connection"
// when its first write meets the socket its reader closed. That is what TLS
// 1.3 gives for a refused client certificate, because the client's handshake
// ends before the node has checked the certificate. For those errors alone,
// dial asks once more (see whyClosed) and adds what the node says.
func dial(raw string, uri amqp.URI, cfg amqp.Config) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(raw, cfg)
	if err == nil || !(errors.Is(err, amqp.ErrClosed) || errors.Is(err, net.ErrClosed)) {
		return conn, err
	}
	if cause := whyClosed(uri, cfg.TLSClientConfig); cause != nil {
		return conn, fmt.Errorf("%w; on a second try: %w", err, cause)
	}
	return conn, err
}

// amqpHeader opens an AMQP 0-9-1 connection.
var amqpHeader = []byte("AMQP\x00\x00\x09\x01")

// whyClosed connects to uri's node as the library does (TLS for amqps, with
// conf), sends the protocol header and reads the first byte of the answer,
// all within dialTimeout. It returns the error that ends this, such as
// "remote error: tls: unknown certificate authority", or nil when the node
// answered this time, or when it cannot ask as the library did (an amqps
// URL whose TLS settings are in its query and no conf).
func whyClosed(uri amqp.URI, conf *tls.Config) error {
	if uri.Scheme == "amqps" && conf == nil && (uri.CACertFile != "" || uri.CertFile != "" || uri.KeyFile != "" || uri.ServerName != "") {
		return nil
	}
	deadline := time.Now().Add(dialTimeout)
	addr := net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
	conn, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if uri.Scheme == "amqps" {
		conf = conf.Clone()
		if conf == nil {
			conf = &tls.Config{}
		}
		if conf.ServerName == "" {
			conf.ServerName = uri.Host // as the library does
		}
		tc := tls.Client(conn, conf)
		if err := tc.Handshake(); err != nil {
			return err
		}
		conn = tc
	}
	_, werr := conn.Write(amqpHeader)
	// Read even when the write failed: the node's alert may be waiting.
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return err
	}
	return werr
}
