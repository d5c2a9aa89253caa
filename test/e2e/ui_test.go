package e2e

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/railco/relay/pkg/brokertest"
)

// chromiumPath is Debian's chromium package (.ci/run installs it); CHROMIUM
// names another build.
const chromiumPath = "/usr/bin/chromium"

// screenshotFile is the README's picture of the queues page. The test writes
// it only when UPDATE_SCREENSHOT=1, so make test never changes the tree.
const screenshotFile = "../../docs/img/management-ui-queues.png"

// uiQueue is one row of the management UI's queues table, as the test reads it.
type uiQueue struct {
	Name      string `json:"name"`
	Consumers string `json:"consumers"`
	Ready     string `json:"ready"`
}

// An operator who logs in to the RabbitMQ management UI in a real browser
// finds relay's queues on the Queues tab: the main queue consumed by the
// forwarder, the retry tiers with no consumer (the broker moves their messages
// by TTL), and the dead-letter queue holding a letter.
func TestUI_ListsRelaysQueues(t *testing.T) {
	began := time.Now()
	browser := chromium(t)
	admin := brokertest.Admin(t) // fails loudly when the management plugin is off
	base := strings.TrimSuffix(admin.String(), "/") + "/"
	user, pass := uiCredentials(t)

	// The real stack, so the page shows what make run shows: a consumer on
	// the main queue, and one letter dead-lettered for a non-retryable 422.
	s := startStack(t, map[string]string{}) // the defaults: the event stream is in the picture
	setStubMode(t, s.stub.addr, `{"forceStatus": 422}`)
	postUntilAccepted(t, s.ingress.addr, registration("ui-dead-letter"))
	conn := brokertest.Dial(t)
	brokertest.Eventually(t, 15*time.Second, "the dead letter", func() bool {
		return brokertest.Depth(t, conn, s.topo.DeadQueue) == 1
	})
	// The login form of the 3.10+ UI (js/tmpl/login.ejs): inputs named
	// username and password, a submit button labelled Login.
	browse(t, browser, "open the login page", 15*time.Second, chromedp.Steps(
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS(`#login input[name="username"]`)),
	))
	browse(t, browser, "log in", 10*time.Second, chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS(`#login input[name="username"]`), user),
		chromedp.SendKeys(chromedp.CSS(`#login input[name="password"]`), pass),
		chromedp.Click(chromedp.CSS(`#login input[type="submit"][value="Login"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tabs a[href="#/queues"]`)),
	))
	// The UI shows the management plugin's statistics, which lag the queue
	// by up to its collection interval (5 s); wait for them so that the first
	// render is the final one.
	type queueStats struct {
		Consumers     int `json:"consumers"`
		MessagesReady int `json:"messages_ready"`
	}
	stats := func(name string) queueStats {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var q queueStats
		if err := admin.GetQueue(ctx, name, &q); err != nil {
			t.Fatalf("GET queue %s: %v", name, err)
		}
		return q
	}
	brokertest.Eventually(t, 15*time.Second, "the management statistics", func() bool {
		return stats(s.topo.Queue).Consumers >= 1 && stats(s.topo.DeadQueue).MessagesReady == 1 && stats(s.topo.Events).Consumers >= 1
	})
	t.Logf("statistics current: %s since the start", time.Since(began).Round(time.Millisecond))

	// The Consumer count column is off by default (the table's "+/-"
	// chooser); the UI keeps that choice in localStorage.
	browse(t, browser, "show the consumers column", 5*time.Second,
		chromedp.Evaluate[chromedp.Void](`localStorage.setItem('rabbitmq.column-queues-consumers', 'true')`))
	// The queues page filters by name on the server when Enter is pressed in
	// its Filter box; the test's prefix leaves relay's five queues and its
	// event stream.
	names := append(s.topo.QueueNames(), s.topo.Events)
	browse(t, browser, "open the Queues tab and filter", 15*time.Second, chromedp.Steps(
		chromedp.Click(chromedp.CSS(`#tabs a[href="#/queues"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#queues-name`)),
		chromedp.SendKeys(chromedp.CSS(`#queues-name`), s.topo.Exchange+".\r"),
		chromedp.PollFunction[chromedp.Void](`(want) => {
			const shown = [...document.querySelectorAll('#main table.list tbody tr a[href^="#/queues/"]')].map(a => a.textContent);
			return shown.length === want.length && want.every(n => shown.includes(n));
		}`, chromedp.WithPollingArgs(names), chromedp.WithPollingTimeout(10*time.Second)),
	))
	rows := browse(t, browser, "read the queues table", 5*time.Second, chromedp.Evaluate[[]uiQueue](readQueuesTable))
	t.Logf("queues page: %+v", rows)
	got := map[string]uiQueue{}
	for _, r := range rows {
		got[r.Name] = r
	}
	for _, name := range names {
		r, ok := got[name]
		switch {
		case !ok:
			t.Errorf("queue %s is not listed", name)
		case name == s.topo.Queue && r.Consumers != "1":
			t.Errorf("main queue %s shows %q consumers, want 1 (the forwarder)", name, r.Consumers)
		case name == s.topo.Events && r.Consumers != "1":
			t.Errorf("event stream %s shows %q consumers, want 1 (the ingress's index)", name, r.Consumers)
		case name == s.topo.DeadQueue && (r.Consumers != "0" || r.Ready != "1"):
			t.Errorf("dead-letter queue %s shows %q consumers and %q ready, want 0 and 1", name, r.Consumers, r.Ready)
		case name != s.topo.Queue && name != s.topo.DeadQueue && name != s.topo.Events && r.Consumers != "0":
			t.Errorf("retry tier %s shows %q consumers, want 0 (the broker moves its messages)", name, r.Consumers)
		}
	}

	shot := browse(t, browser, "take a screenshot", 10*time.Second, chromedp.FullScreenshot(100))
	file := filepath.Join(t.TempDir(), filepath.Base(screenshotFile))
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		file = screenshotFile
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatalf("save the screenshot: %v", err)
	}
	t.Logf("screenshot: %s (%d bytes); whole test: %s", file, len(shot), time.Since(began).Round(time.Millisecond))
}

// readQueuesTable reads the queues table of the management UI: the name, the
// consumers and the ready count of each row, found by the column headings
// (the table's second heading row), so the column chooser may add others.
const readQueuesTable = `(() => {
	const table = document.querySelector('#main table.list');
	const heads = [...table.querySelectorAll('thead tr:nth-child(2) th')].map(th => th.textContent.trim());
	const col = h => heads.indexOf(h);
	return [...table.querySelectorAll('tbody tr')].map(tr => {
		const cells = [...tr.children].map(c => c.textContent.trim());
		return {name: cells[col('Name')], consumers: cells[col('Consumers')], ready: cells[col('Ready')]};
	});
})()`

// browse runs one step in the browser, bounded by timeout, and logs how long
// it took. On error it fails t with what the page shows.
func browse[T any](t *testing.T, browser context.Context, name string, timeout time.Duration, action chromedp.Action[T]) T {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(browser, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, pageText(browser))
	}
	t.Logf("%s: %s", name, time.Since(start).Round(time.Millisecond))
	return v
}

// uiCredentials returns the login for the UI: RABBITMQ_MANAGEMENT_URL's user
// when it names one, else AMQP_URL's (guest/guest on the local broker).
func uiCredentials(t *testing.T) (user, pass string) {
	t.Helper()
	if m := brokertest.ManagementURL(); m != "" {
		if u, err := url.Parse(m); err == nil && u.User != nil {
			p, _ := u.User.Password()
			return u.User.Username(), p
		}
	}
	uri, err := amqp.ParseURI(brokertest.URL())
	if err != nil {
		t.Fatal("AMQP_URL does not parse")
	}
	return uri.Username, uri.Password
}

// chromium starts a headless Chromium for t and returns its chromedp
// context, stopped when t ends. It fails, never skips, without Chromium.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath
	if p := os.Getenv("CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Chromium is needed for the management UI test: %v (apt-get install chromium; .ci/run does, or set CHROMIUM)", err)
	}
	log := &syncBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 800),
		chromedp.NoSandbox, // the tests run as root, where the sandbox cannot start
		chromedp.DisableGPU,
		// Without these Chromium opens connections of its own at start
		// (updates, sync, QUIC), which are refused here and in CI.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.CombinedOutput(log),
	)
	// The whole browser lives at most two minutes: a bound on every step,
	// even one that ignores its own timeout.
	life, stopLife := context.WithTimeout(context.Background(), 2*time.Minute)
	alloc, stopAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, stopBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		stopBrowser()
		stopAlloc()
		stopLife()
		if t.Failed() {
			t.Logf("chromium output:\n%s", log.String())
		}
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v\n%s", path, err, log.String())
	}
	t.Logf("chromium started: %s", time.Since(start).Round(time.Millisecond))
	return ctx
}

// pageText is what the page says, for a failure message.
func pageText(browser context.Context) string {
	ctx, cancel := context.WithTimeout(browser, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "page text unavailable: " + err.Error()
	}
	return "the page shows:\n" + text
}
