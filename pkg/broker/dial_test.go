package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// refusingNode is a TLS listener that wants a client certificate and gets
// none: as a RabbitMQ node with fail_if_no_peer_cert does, it ends every
// connection with an alert after the client's TLS 1.3 handshake is done.
func refusingNode(t *testing.T) (url string, trust *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "node"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.(*tls.Conn).Handshake() // fails: no certificate; sends the alert
			}()
		}
	}()
	return "amqps://guest:guest@" + ln.Addr().String() + "/", &tls.Config{RootCAs: pool}
}

func TestWhyClosed_SaysWhatTheNodeSaid(t *testing.T) {
	url, trust := refusingNode(t)
	uri, err := amqp.ParseURI(url)
	if err != nil {
		t.Fatal(err)
	}
	err = whyClosed(uri, trust)
	if err == nil || !strings.Contains(err.Error(), "tls: certificate required") {
		t.Fatalf("whyClosed: %v, want the node's alert", err)
	}
}

// Whichever way the library's race goes, the error names the alert: many
// dials see both ways on a loaded machine.
func TestDial_RefusedCertificateSaysWhy(t *testing.T) {
	url, trust := refusingNode(t)
	uri, err := amqp.ParseURI(url)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		conn, err := dial(url, uri, amqp.Config{TLSClientConfig: trust.Clone()})
		if err == nil {
			conn.Close()
			t.Fatalf("dial %d: connected to a node that refuses it", i)
		}
		if !strings.Contains(err.Error(), "tls: certificate required") {
			t.Fatalf("dial %d: %v, want an error that names the node's alert", i, err)
		}
	}
}
