package broker_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/broker"
	"github.com/railco/relay/pkg/brokertest"
)

func TestSplitURLs(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string
	}{
		{"amqp://u:p@h:5672/", []string{"amqp://u:p@h:5672/"}},
		{"amqp://u:p@a:5672/,amqp://u:p@b:5672/, amqps://u:p@c:5671/ ",
			[]string{"amqp://u:p@a:5672/", "amqp://u:p@b:5672/", "amqps://u:p@c:5671/"}},
		// A comma inside a password is not a separator.
		{"amqp://u:p,w@a:5672/,amqp://u:p,w@b:5672/", []string{"amqp://u:p,w@a:5672/", "amqp://u:p,w@b:5672/"}},
		{"", []string{""}},
	} {
		if got := broker.SplitURLs(tc.raw); !slices.Equal(got, tc.want) {
			t.Errorf("SplitURLs(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestParseURLs_ErrorsNameThePositionNotThePassword(t *testing.T) {
	for _, raw := range []string{
		"amqp://u:s3cret@a:5672/,http://u:s3cret@b/",
		"amqp://u:s3cret@a:5672/,",
		"amqp://u:s3cret@a:notaport/",
	} {
		_, err := broker.ParseURLs(raw)
		if err == nil {
			t.Errorf("ParseURLs(%q): no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "URL ") {
			t.Errorf("ParseURLs(%q) = %v, want the URL's position and no password", raw, err)
		}
	}
	uris, err := broker.ParseURLs("amqp://u:p@a:5672/v,amqps://u:p@b/v")
	if err != nil || len(uris) != 2 || broker.Node(uris[0]) != "a:5672" || broker.Node(uris[1]) != "b:5671" {
		t.Errorf("ParseURLs = %v, %v; want nodes a:5672 and b:5671", uris, err)
	}
}

func TestRedact_MasksEveryPasswordOfAList(t *testing.T) {
	got := broker.Redact("amqp://u:s3cret@a:5672/,amqp://u:s3cret@b:5672/")
	if got != "amqp://u:xxxxx@a:5672/,amqp://u:xxxxx@b:5672/" {
		t.Errorf("Redact = %q", got)
	}
}

// With a dead node in the list, Run gets to the live one, says which it is
// on, and after every loss moves on to the next URL.
func TestRun_WalksTheListOfNodes(t *testing.T) {
	live := brokertest.URL()
	uri, err := amqp.ParseURI(live)
	if err != nil {
		t.Fatal(err)
	}
	// The same broker under a second name, so that both are live.
	other := uri
	other.Host = "localhost"
	if uri.Host == "localhost" {
		other.Host = "127.0.0.1"
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0") // accepts and never answers: a hung node
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	hung := fmt.Sprintf("amqp://guest:guest@%s/", dead.Addr())
	list := strings.Join([]string{live, hung, other.String()}, ",")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var nodes []string
	d := broker.Dialer{URL: list, Name: "test", Log: quiet(), OnNode: func(node string) {
		if node != "" {
			mu.Lock()
			nodes = append(nodes, node)
			mu.Unlock()
		}
	}}
	done := make(chan error, 1)
	go func() {
		done <- d.Run(ctx, func(ctx context.Context, conn *amqp.Connection) error {
			mu.Lock()
			n := len(nodes)
			mu.Unlock()
			if n >= 3 {
				cancel()
				return nil
			}
			conn.Close() // lose it
			return broker.Wait(ctx, conn, nil, nil)
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("Run did not walk the list")
	}
	a, b := broker.Node(uri), broker.Node(other)
	// Three sessions on two live nodes in turn; the hung one is skipped
	// after the dial timeout wherever it comes in the walk.
	if len(nodes) != 3 || nodes[0] == nodes[1] || nodes[1] == nodes[2] || !slices.Contains(nodes, a) || !slices.Contains(nodes, b) {
		t.Errorf("sessions on %q, want them alternating between %s and %s", nodes, a, b)
	}
}

func TestDialAny_SkipsDeadNodes(t *testing.T) {
	dead := "amqp://guest:guest@127.0.0.1:1/"
	for range 3 { // the start is random: each order gets its chance
		conn, node, err := broker.DialAny(dead+","+brokertest.URL(), amqp.Config{})
		if err != nil {
			t.Fatalf("DialAny: %v", err)
		}
		uri, _ := amqp.ParseURI(brokertest.URL())
		if node != broker.Node(uri) {
			t.Errorf("DialAny connected to %s, want %s", node, broker.Node(uri))
		}
		_ = conn.Close()
	}
	if _, _, err := broker.DialAny(dead, amqp.Config{}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("DialAny of a dead node = %v, want an error naming it", err)
	}
}
