package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// SplitURLs splits AMQP_URL into its URLs: one, or the nodes of a cluster
// separated by commas ("amqp://u:p@rabbit-1:5672/,amqp://u:p@rabbit-2:5672/").
// A comma splits only where a URL ("scheme://") or nothing follows it, so a
// password holding a comma stays whole. Blanks around each URL are dropped.
func SplitURLs(raw string) []string {
	var urls []string
	for _, part := range strings.Split(raw, ",") {
		trimmed := strings.TrimSpace(part)
		if len(urls) > 0 && trimmed != "" && !hasScheme.MatchString(trimmed) {
			urls[len(urls)-1] += "," + part // a comma inside the previous URL
			continue
		}
		urls = append(urls, trimmed)
	}
	for i := range urls {
		urls[i] = strings.TrimSpace(urls[i])
	}
	return urls
}

var hasScheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://`)

// ParseURLs splits raw as SplitURLs does and checks every URL. Its errors
// name a URL by its position and host, never by its text: the text holds the
// password.
func ParseURLs(raw string) ([]amqp.URI, error) {
	urls := SplitURLs(raw)
	out := make([]amqp.URI, 0, len(urls))
	for i, u := range urls {
		if u == "" {
			return nil, fmt.Errorf("URL %d of %d is empty", i+1, len(urls))
		}
		uri, err := amqp.ParseURI(u)
		if err != nil || (uri.Scheme != "amqp" && uri.Scheme != "amqps") {
			// The parser's error quotes the URL, password and all.
			return nil, fmt.Errorf("URL %d of %d (%s) is not an amqp:// or amqps:// URL", i+1, len(urls), Redact(u))
		}
		out = append(out, uri)
	}
	return out, nil
}

// Redact returns raw without passwords, for logs: every URL of a list has its
// password masked.
func Redact(raw string) string {
	urls := SplitURLs(raw)
	for i, u := range urls {
		parsed, err := url.Parse(u)
		if err != nil {
			urls[i] = "(unparseable AMQP URL)"
			continue
		}
		urls[i] = parsed.Redacted()
	}
	return strings.Join(urls, ",")
}

// Node names the broker node a URL leads to, host:port, for logs and probes.
func Node(uri amqp.URI) string {
	return fmt.Sprintf("%s:%d", uri.Host, uri.Port)
}

// dialTimeout bounds the TCP connect and the AMQP handshake. A node that is
// hung (SIGSTOP, a stalled VM) accepts the TCP connection in its kernel and
// never answers: without a bound the library waits 30 s before the next node
// gets a try.
const dialTimeout = 5 * time.Second

// nodes walks the URLs of a list round robin from a random start, so that
// the replicas of a service spread over a cluster's nodes, and every
// reconnect tries the next node: the one just lost is the likeliest down.
type nodes struct {
	urls []string
	uris []amqp.URI
	next int
}

func newNodes(raw string) (*nodes, error) {
	uris, err := ParseURLs(raw)
	if err != nil {
		return nil, err
	}
	if len(uris) == 0 {
		return nil, errors.New("no AMQP URL")
	}
	return &nodes{urls: SplitURLs(raw), uris: uris, next: rand.IntN(len(uris))}, nil
}

// take returns the URL to dial now and moves on.
func (n *nodes) take() (raw string, uri amqp.URI) {
	i := n.next
	n.next = (n.next + 1) % len(n.urls)
	return n.urls[i], n.uris[i]
}

// DialAny connects to one of the URLs of raw, trying each once from a random
// start; cfg.Dial defaults to a dial bounded by dialTimeout. It returns the
// connection and the node it is on, or the last error. For one-shot clients
// (relayctl); services use Dialer.Run, which keeps trying.
func DialAny(raw string, cfg amqp.Config) (*amqp.Connection, string, error) {
	ns, err := newNodes(raw)
	if err != nil {
		return nil, "", err
	}
	if cfg.Dial == nil {
		cfg.Dial = amqp.DefaultDial(dialTimeout)
	}
	tlsConfig := cfg.TLSClientConfig
	var errs []error
	for range ns.urls {
		u, uri := ns.take()
		cfg.TLSClientConfig = tlsConfig.Clone() // the library sets its ServerName: one config per dial
		conn, err := dial(u, uri, cfg)
		if err == nil {
			return conn, Node(uri), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", Node(uri), err))
	}
	return nil, "", errors.Join(errs...)
}
