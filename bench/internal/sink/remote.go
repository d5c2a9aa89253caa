package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ChildArg is the first argument that makes the benchmark binary run as the
// sink process (see Main).
const ChildArg = "sink-child"

// Main runs the sink process: it serves on a free loopback port, prints the
// address as the first line of stdout, and exits when stdin closes (the
// benchmark ended, however it ended).
func Main(stdin io.Reader, stdout io.Writer) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		return 1
	}
	fmt.Fprintln(stdout, s.Addr())
	_, _ = io.Copy(io.Discard, stdin)
	_ = s.Close()
	return 0
}

// Remote controls a sink process. Its methods are safe for concurrent use.
type Remote struct {
	url     string // delivery URL
	control string // http://host:port/control
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	http    *http.Client
}

// Spawn starts exe (this benchmark binary) as a sink process.
func Spawn(ctx context.Context, exe string) (*Remote, error) {
	cmd := exec.Command(exe, ChildArg)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sink: %w", err)
	}
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	r := &Remote{cmd: cmd, stdin: stdin, http: &http.Client{}}
	select {
	case a := <-addr:
		if a == "" {
			r.Close()
			return nil, errors.New("sink exited before listening")
		}
		r.url, r.control = "http://"+a+"/catering", "http://"+a+"/control"
	case <-time.After(10 * time.Second):
		r.Close()
		return nil, errors.New("sink did not listen within 10s")
	case <-ctx.Done():
		r.Close()
		return nil, ctx.Err()
	}
	return r, nil
}

// PID is the sink process's id.
func (r *Remote) PID() int { return r.cmd.Process.Pid }

// URL is where the forwarder must deliver (CATERING_SERVICE_EP).
func (r *Remote) URL() string { return r.url }

// Close ends the sink process.
func (r *Remote) Close() {
	_ = r.stdin.Close()
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}

// Reset forgets every recording and answers in mode from now on.
func (r *Remote) Reset(mode Mode) error {
	b, _ := json.Marshal(mode)
	resp, err := r.http.Post(r.control+"/reset", "application/json", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("reset sink: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("reset sink: %s", resp.Status)
	}
	return nil
}

// Counts returns what the sink saw since the last Reset.
func (r *Remote) Counts() (Counts, error) {
	var c Counts
	return c, r.get(context.Background(), "/counts", &c)
}

// Arrivals returns key → first successful arrival (wall clock).
func (r *Remote) Arrivals() (map[string]time.Time, error) {
	var raw map[string]int64
	if err := r.get(context.Background(), "/arrivals", &raw); err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(raw))
	for k, ns := range raw {
		out[k] = time.Unix(0, ns)
	}
	return out, nil
}

// WaitDelivered blocks until at least n distinct keys were delivered, ctx
// ends, or timeout passes (an error wrapping ErrTimeout).
func (r *Remote) WaitDelivered(ctx context.Context, n int, timeout time.Duration) error {
	q := url.Values{"n": {strconv.Itoa(n)}, "timeout": {timeout.String()}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.control+"/wait?"+q.Encode(), nil)
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("wait for deliveries: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	msg, _ := io.ReadAll(resp.Body)
	return fmt.Errorf("%w (%s)", ErrTimeout, strings.TrimSpace(string(msg)))
}

func (r *Remote) get(ctx context.Context, path string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.control+path, nil)
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("sink %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sink %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
