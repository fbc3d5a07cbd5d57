package localcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one daemon of the cluster: started detached with its output in a log file and its
// pid in a pid file, and stopped by that pid (never by name).
type proc struct {
	name    string
	args    []string     // argv, args[0] the binary
	netns   string       // path of a netns to run in (through nsenter), or ""
	dir     string       // where the log and pid files go
	exits   chan<- *proc // if set, hears the proc each time it exits
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
}

func (p *proc) pidFile() string { return filepath.Join(p.dir, p.name+".pid") }
func (p *proc) logFile() string { return filepath.Join(p.dir, p.name+".log") }

func (p *proc) start() error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	argv := p.args
	if p.netns != "" {
		// nsenter joins only the network namespace; unlike `ip netns exec` it leaves /sys (and
		// so bpffs) as it is.
		argv = append([]string{"nsenter", "--net=" + p.netns, "--"}, argv...)
	}
	logf, err := os.OpenFile(p.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s start: %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a Ctrl-C in the terminal reaches only `skiff up`, which then
	// stops the daemons in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd = cmd
	exited := make(chan struct{})
	p.exited = exited
	if err := os.WriteFile(p.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return err
	}
	go func() {
		p.exitErr = cmd.Wait()
		close(exited)
		if p.exits != nil {
			p.exits <- p
		}
	}()
	return nil
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs.
func (p *proc) stop(grace time.Duration) {
	if p.cmd == nil {
		stopPidFile(p.pidFile(), grace)
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
	}
	os.Remove(p.pidFile())
}

// stopPidFile stops a daemon left by an earlier run, if the pid file names a live process.
func stopPidFile(path string, grace time.Duration) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	defer os.Remove(path)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if syscall.Kill(pid, syscall.SIGTERM) != nil {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// alive reports whether the pid in path is a running process.
func alive(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}
