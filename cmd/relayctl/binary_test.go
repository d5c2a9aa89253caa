package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/creack/pty"
)

// Some behaviour belongs to the process, not to run: what a terminal sees,
// signals, a shell sourcing the completion script. Those tests build the
// real binary and run it.

// buildRelayctl compiles relayctl into a directory of the test's own.
func buildRelayctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relayctl")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// command returns bin run with args in c's environment (the test's topology,
// on the real broker).
func (c *cli) command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v) // the last of duplicate keys wins
	}
	return cmd
}

// ptyRun is cmd started on a pseudo-terminal: stdin, stdout and stderr are
// the terminal, as in an operator's shell.
type ptyRun struct {
	cmd  *exec.Cmd
	ptmx *os.File
	mu   sync.Mutex
	out  bytes.Buffer // everything written to the terminal so far
	read sync.WaitGroup
}

func startPTY(t *testing.T, cmd *exec.Cmd) *ptyRun {
	t.Helper()
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatalf("start on a pty: %v", err)
	}
	r := &ptyRun{cmd: cmd, ptmx: ptmx}
	r.read.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			r.mu.Lock()
			r.out.Write(buf[:n])
			r.mu.Unlock()
			if err != nil {
				return // EIO once the process and every copy of the terminal are gone
			}
		}
	})
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
		r.read.Wait()
		_ = ptmx.Close()
	})
	return r
}

// output returns what the terminal has shown so far.
func (r *ptyRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// wait waits for the process and everything it wrote, and returns its exit
// status and output.
func (r *ptyRun) wait(t *testing.T) (int, string) {
	t.Helper()
	err := r.cmd.Wait()
	r.read.Wait()
	return exitCode(t, err), r.output()
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	default:
		t.Fatalf("run relayctl: %v", err)
		return -1
	}
}

// runPiped runs cmd with stdout and stderr on pipes, as in a script.
func runPiped(t *testing.T, cmd *exec.Cmd) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	return exitCode(t, cmd.Run()), out.String(), errs.String()
}
