package procs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// CPUTime returns the user+system CPU time pid has used so far.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// Machine is the whole machine's CPU time by kind, from /proc/stat.
type Machine struct {
	Busy, Idle, Steal time.Duration
}

// MachineCPU reads /proc/stat's first line.
func MachineCPU() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("unexpected /proc/stat")
	}
	var v [8]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }
	// user nice system idle iowait irq softirq steal
	return Machine{
		Busy:  tick(v[0] + v[1] + v[2] + v[5] + v[6]),
		Idle:  tick(v[3] + v[4]),
		Steal: tick(v[7]),
	}, nil
}

// ListenerPID returns the process listening on 127.0.0.1 or 0.0.0.0 TCP port,
// found through /proc/net/tcp and the processes' socket descriptors.
func ListenerPID(port int) (int, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	want := fmt.Sprintf(":%04X", port)
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], want) && f[3] == "0A" { // 0A: LISTEN
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("nothing listens on port %d", port)
	}
	target := "socket:[" + inode + "]"
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && l == target {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no process owns the socket listening on port %d", port)
}

// Meter measures CPU use over a window: per named process, and for the
// whole machine, in cores (CPU seconds per wall second).
type Meter struct {
	start   time.Time
	pids    map[string]int
	base    map[string]time.Duration
	machine Machine
}

// StartMeter starts a window for pids (name → pid).
func StartMeter(pids map[string]int) *Meter {
	m := &Meter{start: time.Now(), pids: pids, base: map[string]time.Duration{}}
	for name, pid := range pids {
		m.base[name], _ = CPUTime(pid)
	}
	m.machine, _ = MachineCPU()
	return m
}

// Usage is CPU use in cores over a window.
type Usage struct {
	Seconds float64            `json:"seconds"`
	Cores   map[string]float64 `json:"cores"`
	// Other is what the machine spent outside the measured processes
	// (other people's work, the kernel); Idle and Steal complete the picture
	// (steal: time the hypervisor gave to other machines).
	Other float64 `json:"other"`
	Idle  float64 `json:"idle"`
	Steal float64 `json:"steal"`
}

// Stop ends the window.
func (m *Meter) Stop() Usage {
	wall := time.Since(m.start)
	u := Usage{Seconds: wall.Seconds(), Cores: map[string]float64{}}
	if wall <= 0 {
		return u
	}
	var known time.Duration
	for name, pid := range m.pids {
		t, err := CPUTime(pid)
		if err != nil {
			continue // exited: its share lands in Other
		}
		d := t - m.base[name]
		known += d
		u.Cores[name] = d.Seconds() / wall.Seconds()
	}
	if mc, err := MachineCPU(); err == nil {
		busy := mc.Busy - m.machine.Busy
		u.Other = max(busy-known, 0).Seconds() / wall.Seconds()
		u.Idle = (mc.Idle - m.machine.Idle).Seconds() / wall.Seconds()
		u.Steal = (mc.Steal - m.machine.Steal).Seconds() / wall.Seconds()
	}
	return u
}
