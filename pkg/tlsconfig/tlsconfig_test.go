package tlsconfig_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/railco/relay/pkg/tlsconfig"
)

// writePEM writes a self-signed certificate and its key for host, as a CA.
func writePEM(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert, key
}

// A server with its own CA that asks for a client certificate: the
// configuration trusts the one and presents the other.
func TestConfig_TrustsTheCAAndPresentsTheClientCertificate(t *testing.T) {
	dir := t.TempDir()
	serverCert, serverKey, _, _ := writePEM(t, dir, "server")
	clientCert, clientKey, client, _ := writePEM(t, dir, "client")
	pair, err := tls.LoadX509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(client)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	get := func(f tlsconfig.Files) error {
		cfg, err := f.Config("")
		if err != nil {
			return err
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(tlsconfig.Files{CA: serverCert, Cert: clientCert, Key: clientKey}); err != nil {
		t.Errorf("with the CA and the client certificate: %v", err)
	}
	if err := get(tlsconfig.Files{CA: serverCert}); err == nil {
		t.Error("without a client certificate the server let us in")
	}
	if err := get(tlsconfig.Files{Cert: clientCert, Key: clientKey}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v, want an unknown-authority error", err)
	}
}

func TestConfig_Errors(t *testing.T) {
	dir := t.TempDir()
	cert, key, _, _ := writePEM(t, dir, "x")
	if cfg, err := (tlsconfig.Files{}).Config(""); cfg != nil || err != nil {
		t.Errorf("no files: %v %v, want nil, nil", cfg, err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	for name, f := range map[string]tlsconfig.Files{
		"missing CA": {CA: filepath.Join(dir, "nope")},
		"not PEM":    {CA: notPEM},
		"cert alone": {Cert: cert},
		"key alone":  {Key: key},
		"swapped":    {Cert: key, Key: cert},
	} {
		if _, err := f.Config(""); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := (tlsconfig.Files{Cert: cert}).Validate("AMQP"); err == nil || !strings.Contains(err.Error(), "AMQP_CLIENT_KEY_FILE") {
		t.Errorf("Validate: %v", err)
	}
}
