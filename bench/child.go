package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffnet/skiff/datapath/netns"
)

// The load generator runs in a child process, for every mode alike. The socket-level mode needs
// the client's sockets in a cgroup with the connect hooks attached; moving threads of this
// process into that cgroup would drag the Go runtime's shared threads (and the backend servers
// they also run) along and leave the process half in, half out. A child started directly inside
// the cgroup (clone3 CLONE_INTO_CGROUP) and inside the client netns (forked from a thread that
// is in it) has every thread in the right place from its first instruction, and the parent's
// servers stay out. Running all modes the same way keeps the comparison fair.

// Launcher starts load-generator children.
type Launcher struct {
	Exe    string   // executable to re-run; os.Executable() by default
	Args   []string // arguments that make Exe call LoadgenMain (besides LoadgenEnv=1)
	Client *netns.NS
	Cgroup string // cgroup2 directory the children start in
	Ctx    context.Context
}

// CreateCgroup makes a child cgroup of root named name; never the root itself.
func CreateCgroup(root, name string) (string, error) {
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("cgroup name %q: want a single path element", name)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return "", fmt.Errorf("%s is not a cgroup2 mount", root)
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	return dir, nil
}

// HoldCgroup starts a sleeping child inside dir and returns the function that ends it. A
// populated cgroup cannot be removed, so a sweep of "empty leftover" cgroups by some other
// tool on a shared machine cannot take the cgroup (and the socket hooks attached to it) away
// between two load generators.
func HoldCgroup(dir string) (func(), error) {
	cg, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer cg.Close()
	cmd := exec.Command("sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start a holder process in cgroup %s: %w", dir, err)
	}
	return func() {
		cmd.Process.Kill()
		cmd.Wait()
	}, nil
}

// RemoveCgroup removes a cgroup made by CreateCgroup once its children have exited.
func RemoveCgroup(dir string) error {
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return nil
		}
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// Run starts one child for spec and waits for its result. ProcCPU in the result also counts
// this (the servers') process over the child's lifetime.
func (l *Launcher) Run(spec LoadSpec) (LoadResult, error) {
	exe := l.Exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return LoadResult{}, err
		}
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return LoadResult{}, err
	}
	cg, err := os.Open(l.Cgroup)
	if err != nil {
		return LoadResult{}, fmt.Errorf("open cgroup %s: %w", l.Cgroup, err)
	}
	defer cg.Close()
	var stdout, stderr bytes.Buffer
	ctx := l.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	cmd := exec.CommandContext(ctx, exe, l.Args...)
	cmd.Env = append(os.Environ(), LoadgenEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	parent0 := procCPU()
	if err := l.Client.Do(cmd.Start); err != nil {
		return LoadResult{}, fmt.Errorf("start load generator: %w", err)
	}
	werr := cmd.Wait()
	var res LoadResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("load generator (%v): no result: %v; stderr: %s", werr, err, strings.TrimSpace(stderr.String()))
	}
	res.ProcCPU += procCPU() - parent0
	if res.Err != "" {
		return res, fmt.Errorf("load generator %s: %s", spec.Kind, res.Err)
	}
	return res, nil
}
