// Package procs builds the relay services and runs them as separate
// processes, the way they run in production, and samples their memory.
package procs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles each named service from repo/services/<name> into dir.
// Each is built from its own module directory, which works with and without
// the workspace.
func Build(ctx context.Context, repo, dir string, names ...string) error {
	for _, name := range names {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, name), ".")
		cmd.Dir = filepath.Join(repo, "services", name)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", name, err, out)
		}
	}
	return nil
}

// Spec says how to start one service.
type Spec struct {
	Name string // binary name in the build directory
	Env  map[string]string
	// AddrVar and AddrFileVar name the variables that set the listen address
	// and the file the bound address is written to; the process listens on a
	// free loopback port.
	AddrVar, AddrFileVar string
	// ReadyPath is polled with GET until it answers 200.
	ReadyPath string
	// AdminAddrVar and AdminAddrFileVar, when set, do the same for the
	// operational address (/metrics), which becomes Process.AdminAddr.
	AdminAddrVar, AdminAddrFileVar string
}

// Process is one running service.
type Process struct {
	Name      string
	Addr      string // host:port it listens on
	AdminAddr string // host:port of its operational endpoints, when Spec names them; else Addr
	cmd       *exec.Cmd
	done      chan struct{}
	err       error // exit status, once done is closed
	log       string

	mu      sync.Mutex
	peakRSS int64 // bytes, sampled
	stopMem chan struct{}
	memDone chan struct{}
}

// startTimeout bounds how long a service may take to listen and get ready.
const startTimeout = 30 * time.Second

// Start runs spec from binDir, logging to a file in logDir, waits until it is
// ready, and samples its RSS every interval until Stop.
func Start(ctx context.Context, binDir, logDir string, spec Spec, interval time.Duration) (*Process, error) {
	logFile, err := os.CreateTemp(logDir, spec.Name+"-*.log")
	if err != nil {
		return nil, err
	}
	addrFile := filepath.Join(logDir, fmt.Sprintf("%s-%d.addr", spec.Name, time.Now().UnixNano()))
	cmd := exec.Command(filepath.Join(binDir, spec.Name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, spec.AddrVar+"=127.0.0.1:0", spec.AddrFileVar+"="+addrFile)
	adminFile := ""
	if spec.AdminAddrVar != "" {
		adminFile = addrFile + ".admin"
		cmd.Env = append(cmd.Env, spec.AdminAddrVar+"=127.0.0.1:0", spec.AdminAddrFileVar+"="+adminFile)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	logFile.Close() // the child has its own descriptor
	p := &Process{Name: spec.Name, cmd: cmd, done: make(chan struct{}), log: logFile.Name(),
		stopMem: make(chan struct{}), memDone: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	go p.sample(interval)

	if err := p.waitReady(ctx, addrFile, spec.ReadyPath); err != nil {
		p.Kill()
		return nil, err
	}
	p.AdminAddr = p.Addr
	if adminFile != "" {
		// Written before the service is ready: it binds every listener first.
		b, err := os.ReadFile(adminFile)
		if err != nil || len(b) == 0 {
			p.Kill()
			return nil, fmt.Errorf("%s is ready but wrote no admin address to %s", spec.Name, adminFile)
		}
		p.AdminAddr = strings.TrimSpace(string(b))
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context, addrFile, readyPath string) error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		if p.Addr == "" {
			if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
				p.Addr = strings.TrimSpace(string(b))
			}
		}
		if p.Addr != "" {
			if resp, err := client.Get("http://" + p.Addr + readyPath); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v); log: %s\n%s", p.Name, p.err, p.log, p.Tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // neither file nor readiness has an event to wait on
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s; log: %s\n%s", p.Name, startTimeout, p.log, p.Tail(20))
		}
	}
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// LogFile is where the process writes its log.
func (p *Process) LogFile() string { return p.log }

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Mem is a process's memory use.
type Mem struct {
	RSS  int64 // VmRSS now, bytes
	HWM  int64 // VmHWM, the kernel's peak RSS since start or the last ResetPeak
	Peak int64 // max(HWM, every sampled RSS)
}

// Mem reads /proc/<pid>/status now.
func (p *Process) Mem() Mem {
	rss, hwm, _ := readStatus(p.PID())
	p.mu.Lock()
	peak := max(p.peakRSS, hwm, rss)
	p.mu.Unlock()
	return Mem{RSS: rss, HWM: hwm, Peak: peak}
}

// ResetPeak starts a new peak: it clears the kernel's VmHWM (clear_refs 5)
// and the sampled maximum.
func (p *Process) ResetPeak() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.PID()), []byte("5"), 0)
	p.mu.Lock()
	p.peakRSS = 0
	p.mu.Unlock()
}

func (p *Process) sample(interval time.Duration) {
	defer close(p.memDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if rss, _, err := readStatus(p.PID()); err == nil {
			p.mu.Lock()
			p.peakRSS = max(p.peakRSS, rss)
			p.mu.Unlock()
		}
		select {
		case <-t.C:
		case <-p.done:
			return
		case <-p.stopMem:
			return
		}
	}
}

// readStatus returns VmRSS and VmHWM in bytes.
func readStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		default:
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			*dst = kb << 10
		}
	}
	return rss, hwm, nil
}

// stopTimeout bounds a graceful stop; the services finish in-flight work first.
const stopTimeout = 30 * time.Second

// Stop sends SIGTERM, waits for the exit, and returns the memory figures read
// just before the signal. A process that does not exit in time is killed and
// the error says so; an exit code other than 0 is an error too.
func (p *Process) Stop() (Mem, error) {
	m := p.Mem()
	close(p.stopMem)
	<-p.memDone
	if p.Exited() {
		return m, fmt.Errorf("%s had already exited: %v; log: %s\n%s", p.Name, p.err, p.log, p.Tail(20))
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.Kill()
		return m, fmt.Errorf("%s did not stop within %s of SIGTERM; log: %s", p.Name, stopTimeout, p.log)
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return m, fmt.Errorf("%s exited with %v; log: %s\n%s", p.Name, p.err, p.log, p.Tail(20))
	}
	return m, p.err
}

// Kill ends the process at once; for clean-up after a failure.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
