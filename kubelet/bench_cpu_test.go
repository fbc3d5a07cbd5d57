package kubelet

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU time spent for the pods of a benchmark, so runs can be compared on a machine that
// others share (where wall-clock latency mostly measures the neighbours).

// clockTick is USER_HZ, the unit of /proc/PID/stat times.
const clockTick = 10 * time.Millisecond

// procTimes reads utime+stime and cutime+cstime (reaped children) of a process.
func procTimes(pid string) (self, children time.Duration, ppid string, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, 0, "", false
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, "", false
	}
	n := func(k int) time.Duration { v, _ := strconv.ParseInt(f[k], 10, 64); return time.Duration(v) * clockTick }
	// f[0] is field 3 (state): utime is field 14, so f[11].
	return n(11) + n(12), n(13) + n(14), f[1], true
}

// runtimeCPU is the CPU time of the shims of a containerd namespace (with the runc runs
// they reaped) and of their containers (whose pid first ran runc init), and of containerd.
func runtimeCPU(namespace string) (shims, containerd time.Duration) {
	c := runtimeCPUParts(namespace)
	return c.shim + c.runc + c.ctr, c.containerd
}

// cpuParts splits runtimeCPU: the shims themselves, the runc runs they reaped, the
// containers' processes (runc init, then the container's command) and containerd.
type cpuParts struct{ shim, runc, ctr, containerd time.Duration }

func runtimeCPUParts(namespace string) (c cpuParts) {
	ents, _ := os.ReadDir("/proc")
	shimPids := map[string]bool{}
	parent := map[string]string{}
	own := map[string]time.Duration{}
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		self, children, ppid, ok := procTimes(pid)
		if !ok {
			continue
		}
		parent[pid] = ppid
		own[pid] = self
		comm, _ := os.ReadFile(filepath.Join("/proc", pid, "comm"))
		switch strings.TrimSpace(string(comm)) {
		case "containerd":
			c.containerd += self + children
		case "containerd-shim":
			cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
			if bytes.Contains(cmd, []byte("-namespace\x00"+namespace+"\x00")) {
				shimPids[pid] = true
				c.shim += self
				c.runc += children
			}
		}
	}
	for pid, pp := range parent {
		if shimPids[pp] {
			c.ctr += own[pid]
		}
	}
	return c
}

// selfCPU is this process's CPU time: the agent, and the API server and etcd of testenv.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
