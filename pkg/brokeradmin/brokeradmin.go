package brokeradmin

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/railco/relay/pkg/broker"
)

// The management API's ports when the broker serves it over plain HTTP, and
// over TLS.
const (
	DefaultPort    = 15672
	DefaultTLSPort = 15671
)

// Off, given as the management URL, turns the management API off.
const Off = "off"

// ErrOff is returned by New for the management URL Off.
var ErrOff = errors.New("management API turned off")

// Client calls the management API for one virtual host. It is safe for
// concurrent use. In a cluster every node serves the same API: a call that
// cannot reach one node goes to the next.
type Client struct {
	bases       []*url.URL // scheme://host:port[/prefix], no credentials; one per node
	current     atomic.Int32
	user, pass  string
	vhost       string
	http        *http.Client
	description string // base URLs, password masked
}

// New returns a Client for the broker of amqpURL (AMQP_URL: one URL, or the
// nodes of a cluster separated by commas). mgmtURL, when not empty, says
// where the management API is (e.g. "http://rabbitmq:15672", or several
// separated by commas); its credentials, if any, are used instead of
// amqpURL's. When empty, it is http://<host>:15672 (https://<host>:15671 for
// amqps) of every AMQP URL, with their credentials. The virtual host is
// always the first AMQP URL's. mgmtURL "off" gives ErrOff.
func New(amqpURL, mgmtURL string) (*Client, error) {
	if mgmtURL == Off {
		return nil, ErrOff
	}
	uris, err := broker.ParseURLs(amqpURL)
	if err != nil {
		return nil, fmt.Errorf("AMQP URL: %w", err) // never quotes the password
	}
	uri := uris[0]
	// A call or two per connection to the broker: no connection is kept
	// open between them.
	transport := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}
	c := &Client{user: uri.Username, pass: uri.Password, vhost: uri.Vhost, http: &http.Client{Timeout: 10 * time.Second, Transport: transport}}
	if mgmtURL == "" {
		// The credentials go with every call: over TLS when AMQP uses it.
		for _, uri := range uris {
			base := &url.URL{Scheme: "http", Host: net.JoinHostPort(uri.Host, fmt.Sprint(DefaultPort))}
			if uri.Scheme == "amqps" {
				base = &url.URL{Scheme: "https", Host: net.JoinHostPort(uri.Host, fmt.Sprint(DefaultTLSPort))}
			}
			c.bases = append(c.bases, base)
		}
	} else {
		for _, raw := range strings.Split(mgmtURL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, errors.New("management URL must be an http(s) URL, or several separated by commas")
			}
			if u.User != nil {
				c.user = u.User.Username()
				c.pass, _ = u.User.Password()
			}
			u.User = nil
			u.Path = strings.TrimSuffix(u.Path, "/")
			c.bases = append(c.bases, u)
		}
	}
	if c.vhost == "" {
		c.vhost = "/"
	}
	shown := make([]string, len(c.bases))
	for i, b := range c.bases {
		shown[i] = b.String()
	}
	c.description = strings.Join(shown, ",")
	return c, nil
}

// UseTLS makes an https API trusted as cfg says (the broker's CA, a client
// certificate); nil keeps the system's CAs. Call it before any request.
func (c *Client) UseTLS(cfg *tls.Config) {
	c.http.Transport.(*http.Transport).TLSClientConfig = cfg.Clone() // a config of its own: an AMQP dial sets the AMQP host's name in its config
}

// String is the API's base URL (or URLs, comma-separated), without credentials.
func (c *Client) String() string { return c.description }

// Policy is a RabbitMQ policy, as the management API takes it.
type Policy struct {
	Pattern    string         `json:"pattern"`  // regular expression on names
	ApplyTo    string         `json:"apply-to"` // "queues", "exchanges" or "all"
	Priority   int            `json:"priority"` // the highest matching policy wins
	Definition map[string]any `json:"definition"`
}

// PutPolicy creates or replaces the policy name in the virtual host.
func (c *Client) PutPolicy(ctx context.Context, name string, p Policy) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode policy %s: %w", name, err)
	}
	return c.do(ctx, http.MethodPut, c.policyPath(name), body, nil)
}

// GetPolicy returns the policy name, or an error wrapping ErrNotFound.
func (c *Client) GetPolicy(ctx context.Context, name string) (Policy, error) {
	var p Policy
	err := c.do(ctx, http.MethodGet, c.policyPath(name), nil, &p)
	return p, err
}

// DeletePolicy removes the policy name; one that does not exist is no error.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	err := c.do(ctx, http.MethodDelete, c.policyPath(name), nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// GetQueue reads GET /api/queues/<vhost>/<name> into out (a struct with the
// fields wanted), or returns an error wrapping ErrNotFound.
func (c *Client) GetQueue(ctx context.Context, name string, out any) error {
	return c.do(ctx, http.MethodGet, "/api/queues/"+url.PathEscape(c.vhost)+"/"+url.PathEscape(name), nil, out)
}

// PutUser creates or updates a user with password and tags (e.g.
// "policymaker"), and gives it every permission in the virtual host: for
// tests and set-up scripts, which need a user of their own.
func (c *Client) PutUser(ctx context.Context, name, password, tags string) error {
	body, _ := json.Marshal(map[string]string{"password": password, "tags": tags})
	if err := c.do(ctx, http.MethodPut, "/api/users/"+url.PathEscape(name), body, nil); err != nil {
		return err
	}
	perms, _ := json.Marshal(map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
	return c.do(ctx, http.MethodPut, "/api/permissions/"+url.PathEscape(c.vhost)+"/"+url.PathEscape(name), perms, nil)
}

// DeleteUser removes a user; one that does not exist is no error.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	err := c.do(ctx, http.MethodDelete, "/api/users/"+url.PathEscape(name), nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// ErrNotFound is a 404 from the API.
var ErrNotFound = errors.New("not found")

func (c *Client) policyPath(name string) string {
	return "/api/policies/" + url.PathEscape(c.vhost) + "/" + url.PathEscape(name)
}

// do calls the API; out, if not nil, receives the JSON answer. A node that
// does not answer at all hands the call to the next; any answer is final.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	first := int(c.current.Load())
	var resp *http.Response
	var errs []error
	for i := range c.bases {
		n := (first + i) % len(c.bases)
		var err error
		resp, err = c.call(ctx, c.bases[n], method, path, body)
		if err == nil {
			c.current.Store(int32(n))
			break
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if resp == nil {
		return errors.Join(errs...)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s %s: %w", method, path, ErrNotFound)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s %s: user %q refused (401)", method, path, c.user)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s %s: user %q may not do this (403; policies need the policymaker or administrator tag)", method, path, c.user)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// call sends one request to the API at base.
func (c *Client) call(ctx context.Context, base *url.URL, method, path string, body []byte) (*http.Response, error) {
	u := *base
	u.RawPath = u.Path + path // keep %2F in the vhost escaped
	u.Path += unescape(path)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.user, c.pass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("management API at %s: %w", base, errors.Unwrap(err)) // *url.Error repeats the URL
	}
	return resp, nil
}

func unescape(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}
