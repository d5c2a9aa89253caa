//go:build chaos || cluster

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// privateBroker is a RabbitMQ node of the suite's own, on its own ports and
// data directory, so killing it never disturbs the shared broker on 5672.
// It needs Debian's rabbitmq-server and root (the node runs as the rabbitmq
// user, which must own its directory). The chaos suite runs one; each node
// of the cluster suite's cluster is one too (plain AMQP only, see
// startCluster).
//
// Besides plain AMQP on port, the chaos suite's node serves AMQP over TLS
// on tlsPort, asking every TLS client for a certificate of its CA
// (verify_peer, fail_if_no_peer_cert), and the management API over https
// only, on mgmtPort, with the same server certificate. Both cost the suite
// no extra node start (and no measurable boot time).
type privateBroker struct {
	dir      string
	node     string
	port     int
	tlsPort  int
	mgmtPort int
	certs    brokerCerts
	env      []string
}

// brokerCerts are the PEM files of the node's TLS listener and of its
// clients, all generated for the suite: one CA signs the server certificate
// (localhost, 127.0.0.1) and one client certificate.
type brokerCerts struct {
	CA                    string // the CA certificate, trusted by both sides
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

var (
	sharedBroker     *privateBroker
	sharedBrokerErr  error
	sharedBrokerOnce sync.Once
)

// chaosBroker starts the suite's node on first use and stops it after all tests.
func chaosBroker(t *testing.T) *privateBroker {
	t.Helper()
	sharedBrokerOnce.Do(func() {
		sharedBroker, sharedBrokerErr = startPrivateBroker()
		if sharedBroker != nil {
			afterAll = append(afterAll, sharedBroker.shutdown)
		}
	})
	if sharedBrokerErr != nil {
		t.Fatalf("private RabbitMQ node: %v", sharedBrokerErr)
	}
	return sharedBroker
}

// freePort returns a TCP port nothing listens on, for a process the test
// starts. It is taken below the kernel's ephemeral range: a port the kernel
// hands out (a listener on :0) can be taken by any outgoing connection
// between this check and the process's bind. Ports follow one sequence per
// test process from a random start, so no two calls return the same one.
func freePort() (int, error) {
	const first = 10000
	end := ephemeralStart()
	if end-first < 1000 { // an unusual range: the kernel's choice, as before
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	portsOnce.Do(func() { portNext.Store(int64(mrand.IntN(end - first))) })
	for range 500 {
		p := first + int(portNext.Add(1))%(end-first)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // in use
		}
		ln.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d–%d", first, end-1)
}

var (
	portsOnce sync.Once
	portNext  atomic.Int64
)

// ephemeralStart is the first port of the kernel's ephemeral range
// (net.ipv4.ip_local_port_range; 32768 when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

// checkCanRunNodes fails, loudly, where a private node cannot run: the
// suites never skip.
func checkCanRunNodes() error {
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		return errors.New("rabbitmq-server is not installed (apt-get install -y rabbitmq-server)")
	}
	if os.Geteuid() != 0 {
		return errors.New("the suite must run as root: a private node runs as the rabbitmq user")
	}
	return nil
}

func startPrivateBroker() (*privateBroker, error) {
	if err := checkCanRunNodes(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "relay-chaos-rabbit-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	mgmtPort, err := freePort()
	if err != nil {
		return nil, err
	}
	certs, err := writeBrokerCerts(filepath.Join(dir, "tls"))
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	b, err := newPrivateNode(fmt.Sprintf("relaychaos%d@localhost", os.Getpid()), dir, port, "[rabbitmq_management].\n",
		fmt.Sprintf("listeners.ssl.local = 127.0.0.1:%d\n", tlsPort)+
			"ssl_options.cacertfile = "+certs.CA+"\n"+
			"ssl_options.certfile = "+certs.ServerCert+"\n"+
			"ssl_options.keyfile = "+certs.ServerKey+"\n"+
			"ssl_options.verify = verify_peer\n"+
			"ssl_options.fail_if_no_peer_cert = true\n"+
			// https only: a plain listener would take 15672, the shared broker's.
			"management.ssl.ip = 127.0.0.1\n"+
			fmt.Sprintf("management.ssl.port = %d\n", mgmtPort)+
			"management.ssl.cacertfile = "+certs.CA+"\n"+
			"management.ssl.certfile = "+certs.ServerCert+"\n"+
			"management.ssl.keyfile = "+certs.ServerKey+"\n", "")
	if err != nil {
		return nil, err
	}
	b.tlsPort, b.mgmtPort, b.certs = tlsPort, mgmtPort, certs
	return b, b.start()
}

// newPrivateNode prepares, without starting it, a node named node in dir
// (created by the caller), listening for AMQP on 127.0.0.1:port, with
// plugins (an enabled_plugins term) and more rabbitmq.conf lines. Its
// Erlang distribution port is a free one of its own; epmd and the Erlang
// cookie are the system's, shared with the shared broker (which is what
// lets the cluster suite's nodes join one another).
func newPrivateNode(node, dir string, port int, plugins, conf, advanced string) (*privateBroker, error) {
	dist, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &privateBroker{dir: dir, node: node, port: port}
	files := map[string]string{
		"enabled_plugins": plugins,
		// The system's rabbitmq.conf pins the listener to 5672; ours replaces it.
		"rabbitmq.conf": fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\n", port) + conf,
	}
	if advanced != "" {
		files["advanced.config"] = advanced
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if out, err := exec.Command("chown", "-R", "rabbitmq:rabbitmq", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown %s: %v: %s", dir, err, out)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	b.env = append(os.Environ(),
		"RABBITMQ_NODENAME="+b.node,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+b.pidFile(),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
	)
	if advanced != "" {
		b.env = append(b.env, "RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"))
	}
	return b, nil
}

// URL is the node's AMQP URL.
func (b *privateBroker) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", b.port) }

// TLSURL is the node's amqps URL. The host is the name in the server
// certificate; guest may log in because the connection comes from loopback.
func (b *privateBroker) TLSURL() string {
	return fmt.Sprintf("amqps://guest:guest@localhost:%d/", b.tlsPort)
}

// ManagementURL is the node's management API, https with the same server
// certificate as the amqps listener.
func (b *privateBroker) ManagementURL() string {
	return fmt.Sprintf("https://localhost:%d", b.mgmtPort)
}

func (b *privateBroker) pidFile() string { return filepath.Join(b.dir, "rabbit.pid") }

func (b *privateBroker) start() error {
	_ = os.Remove(b.pidFile()) // a stale one would make wait watch a dead pid
	started := time.Now()
	cmd := exec.Command("rabbitmq-server", "-detached")
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmq-server -detached: %v: %s", err, out)
	}
	wait := exec.Command("rabbitmqctl", "-n", b.node, "wait", b.pidFile(), "--timeout", "120")
	wait.Env = b.env
	if out, err := wait.CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmqctl wait: %v: %s\nlog: %s", err, out, b.logTail())
	}
	extra := ""
	if b.tlsPort != 0 {
		extra = fmt.Sprintf(" (amqps %d, https management %d)", b.tlsPort, b.mgmtPort)
	}
	fmt.Printf("rabbitmq: private node %s up on port %d%s in %s\n", b.node, b.port, extra, time.Since(started).Round(time.Millisecond))
	return nil
}

// pid is the node's OS process, the Erlang VM (beam.smp), from its pid file.
func (b *privateBroker) pid() (int, error) {
	raw, err := os.ReadFile(b.pidFile())
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	return pid, nil
}

// kill9 kills the node's OS process, as a crash or an OOM kill would.
func (b *privateBroker) kill9() error {
	pid, err := b.pid()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill -9 %d: %w", pid, err)
	}
	for syscall.Kill(pid, 0) == nil { // until the process is gone
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("rabbitmq: node %s killed (kill -9 %d)\n", b.node, pid)
	return nil
}

func (b *privateBroker) shutdown() {
	stop := exec.Command("rabbitmqctl", "-n", b.node, "stop")
	stop.Env = b.env
	_ = stop.Run()
	_ = os.RemoveAll(b.dir)
}

func (b *privateBroker) logTail() string {
	raw, _ := os.ReadFile(filepath.Join(b.dir, "log", b.node+".log"))
	if len(raw) > 3000 {
		raw = raw[len(raw)-3000:]
	}
	return string(raw)
}

// logged reports whether the node's log holds s.
func (b *privateBroker) logged(s string) bool {
	raw, _ := os.ReadFile(filepath.Join(b.dir, "log", b.node+".log"))
	return strings.Contains(string(raw), s)
}

// ctl runs rabbitmqctl against the node and returns what it printed.
func (b *privateBroker) ctl(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("rabbitmqctl", append([]string{"-n", b.node}, args...)...)
	cmd.Env = b.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v: %s", args, err, out)
	}
	return out
}

// stop shuts the node down cleanly and waits until its process has exited.
func (b *privateBroker) stop() error {
	cmd := exec.Command("rabbitmqctl", "-n", b.node, "stop", b.pidFile())
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rabbitmqctl stop: %v: %s", err, out)
	}
	fmt.Printf("rabbitmq: node %s stopped (rabbitmqctl stop)\n", b.node)
	return nil
}

// writeBrokerCerts generates a CA, a server certificate for localhost and
// 127.0.0.1 and a client certificate into dir. Keys are ECDSA P-256 in
// PKCS#8 ("PRIVATE KEY"), which both Go and Erlang's ssl (OTP 25) read, and
// 0600: the caller chowns dir to the user the node runs as.
func writeBrokerCerts(dir string) (brokerCerts, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return brokerCerts{}, err
	}
	now := time.Now()
	serial := int64(0)
	issue := func(name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.Subject = pkix.Name{Organization: []string{"relay chaos suite"}, CommonName: name}
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		if parent == nil { // self-signed
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, err
		}
		return cert, key, writePEMFiles(dir, name, der, key)
	}
	ca, caKey, err := issue("ca", &x509.Certificate{
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	if err != nil {
		return brokerCerts{}, err
	}
	if _, _, err := issue("server", &x509.Certificate{
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey); err != nil {
		return brokerCerts{}, err
	}
	if _, _, err := issue("client", &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey); err != nil {
		return brokerCerts{}, err
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	return brokerCerts{
		CA:         file("ca.crt"),
		ServerCert: file("server.crt"), ServerKey: file("server.key"),
		ClientCert: file("client.crt"), ClientKey: file("client.key"),
	}, nil
}

// writePEMFiles writes <name>.crt and <name>.key (0600) into dir.
func writePEMFiles(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// nodeConnection is one client connection as the node sees it.
type nodeConnection struct {
	SSL             bool   `json:"ssl"`
	SSLProtocol     string `json:"ssl_protocol"`
	PeerCertSubject string `json:"peer_cert_subject"`
	// [[key, type, value], ...], connection_name among them
	ClientProperties [][]any `json:"client_properties"`
}

// connections lists the node's client connections by connection_name.
func (b *privateBroker) connections(t *testing.T) map[string]nodeConnection {
	t.Helper()
	raw := b.ctl(t, "list_connections", "ssl", "ssl_protocol", "peer_cert_subject", "client_properties", "--formatter", "json", "--quiet")
	var list []nodeConnection
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v: %s", err, raw)
	}
	out := make(map[string]nodeConnection, len(list))
	for _, c := range list {
		for _, p := range c.ClientProperties {
			if len(p) == 3 && p[0] == "connection_name" {
				name, _ := p[2].(string)
				out[name] = c
			}
		}
	}
	return out
}
