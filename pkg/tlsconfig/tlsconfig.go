// Package tlsconfig builds the TLS client configuration of one connection
// from files: a CA bundle to trust (besides or instead of the system's) and
// a client certificate for mutual TLS. Both services use it towards the
// broker (AMQP_CA_FILE, ...) and the forwarder towards the backend
// (CATERING_CA_FILE, ...).
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names what a TLS client configuration is built from. Empty fields
// are not used.
type Files struct {
	CA   string // PEM bundle of CAs to trust, added to the system's
	Cert string // PEM client certificate (chain), for mutual TLS
	Key  string // its PEM private key
}

// Set reports whether any file is named.
func (f Files) Set() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Validate reports a client certificate without its key, or the reverse.
// prefix names the variables in messages, e.g. "AMQP".
func (f Files) Validate(prefix string) error {
	if (f.Cert == "") != (f.Key == "") {
		return fmt.Errorf("%s_CLIENT_CERT_FILE and %s_CLIENT_KEY_FILE go together", prefix, prefix)
	}
	return nil
}

// Config returns a TLS client configuration for serverName (empty: the
// dialled host's name), or nil when no file is named, so that the caller's
// default applies. Files are read now: a missing or malformed file is an
// error at start, not at the first connection.
func (f Files) Config(serverName string) (*tls.Config, error) {
	if !f.Set() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", f.CA)
		}
		cfg.RootCAs = pool
	}
	if f.Cert != "" || f.Key != "" {
		if f.Cert == "" || f.Key == "" {
			return nil, errors.New("a client certificate needs both its certificate and its key file")
		}
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
