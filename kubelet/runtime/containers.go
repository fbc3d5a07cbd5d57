package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// LabelStartedAt records when the current task started, so an adopting agent knows it.
const LabelStartedAt = "skiff.started.at"

// ContainerSpec is what the agent asks for; Command and Args follow Kubernetes semantics
// against the image's Entrypoint and Cmd.
type ContainerSpec struct {
	ID         string
	Image      string
	Labels     map[string]string
	Command    []string
	Args       []string
	Env        []string
	WorkingDir string
	// NetNSPath is the pod's network namespace; empty means the host's (hostNetwork).
	NetNSPath string
	Hostname  string
	Mounts    []specs.Mount
	// CPULimitMilli and MemoryLimit are limits (0 = none); CPUSharesMilli the request.
	CPULimitMilli  int64
	CPUSharesMilli int64
	MemoryLimit    int64
	// ShimGroup puts containers with the same group (a pod) into one runc shim, as CRI does
	// with its sandbox: fewer processes and faster starts.
	ShimGroup string
}

// Status is a container's task state.
type Status string

const (
	StatusCreated Status = "created" // container exists, no task (or task not started)
	StatusRunning Status = "running"
	StatusExited  Status = "exited"
)

// State is a container's current state.
type State struct {
	Status     Status
	Pid        uint32
	ExitCode   int
	StartedAt  time.Time
	FinishedAt time.Time
}

// Container is one container of the namespace with its labels.
type Container struct {
	ID     string
	Labels map[string]string
}

// ResolveArgs applies Kubernetes' rules for command/args over the image's entrypoint/cmd.
func ResolveArgs(command, args, entrypoint, cmd []string) []string {
	switch {
	case len(command) > 0:
		return append(append([]string{}, command...), args...)
	case len(args) > 0:
		return append(append([]string{}, entrypoint...), args...)
	default:
		return append(append([]string{}, entrypoint...), cmd...)
	}
}

// Create makes the container (snapshot and OCI spec) without starting it. An existing
// container with the same ID is replaced.
func (r *Runtime) Create(ctx context.Context, s ContainerSpec) error {
	ctx = r.ctx(ctx)
	img, err := r.Image(ctx, s.Image)
	if err != nil {
		return err
	}
	ii, err := r.images.info(ctx, img)
	if err != nil {
		return err
	}
	args := ResolveArgs(s.Command, s.Args, ii.config.Entrypoint, ii.config.Cmd)
	if len(args) == 0 {
		return fmt.Errorf("no command: image %s has no entrypoint or cmd and the container sets no command", s.Image)
	}
	opts := []oci.SpecOpts{
		withImageConfig(img, ii),
		oci.WithProcessArgs(args...),
		oci.WithEnv(s.Env),
		oci.WithMounts(s.Mounts),
	}
	if s.ShimGroup != "" {
		opts = append(opts, oci.WithAnnotations(map[string]string{"io.containerd.runc.v2.group": s.ShimGroup}))
	}
	if s.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(s.WorkingDir))
	}
	if s.Hostname != "" {
		opts = append(opts, oci.WithHostname(s.Hostname))
	}
	if s.NetNSPath != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNSPath}))
	} else {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	}
	if s.MemoryLimit > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(s.MemoryLimit)))
	}
	if s.CPULimitMilli > 0 {
		const period = 100000
		opts = append(opts, oci.WithCPUCFS(s.CPULimitMilli*period/1000, period))
	}
	if s.CPUSharesMilli > 0 {
		shares := uint64(s.CPUSharesMilli * 1024 / 1000)
		if shares < 2 {
			shares = 2
		}
		opts = append(opts, oci.WithCPUShares(shares))
	}
	_ = r.Remove(ctx, s.ID)
	newContainer := func() error {
		_, err := r.c.NewContainer(ctx, s.ID,
			client.WithImage(img),
			withRootfs(s.ID, ii),
			client.WithNewSpec(opts...),
			client.WithContainerLabels(s.Labels),
		)
		return err
	}
	err = newContainer()
	if err != nil && isMissingParent(err) {
		// The image's layers went (removed and imported again): unpack and retry.
		r.images.setUnpacked(img.Target().Digest, false)
		if err = r.unpack(ctx, img); err == nil {
			err = newContainer()
		}
	}
	if err != nil {
		return fmt.Errorf("create container %s: %w", s.ID, err)
	}
	return nil
}

// Start starts a new task for the container, its stdout and stderr appended to logPath,
// and returns the start time State will report. A previous (exited) task is deleted first.
func (r *Runtime) Start(ctx context.Context, id, logPath string) (time.Time, error) {
	ctx = r.ctx(ctx)
	c, err := r.c.LoadContainer(ctx, id)
	if err != nil {
		return time.Time{}, fmt.Errorf("load container %s: %w", id, err)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return time.Time{}, fmt.Errorf("log dir: %w", err)
	}
	// A fresh container (the usual case) has no task: try the create first and deal with an
	// old task only when there is one.
	t, err := c.NewTask(ctx, cio.LogFile(logPath))
	if errdefs.IsAlreadyExists(err) {
		if old, terr := c.Task(ctx, nil); terr == nil {
			if _, err := old.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				return time.Time{}, fmt.Errorf("delete old task of %s: %w", id, err)
			}
		}
		t, err = c.NewTask(ctx, cio.LogFile(logPath))
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("create task: %w", err)
	}
	// The start time label (for an agent that adopts the container later) is written while
	// runc starts the process, not after.
	startedAt := time.Now().UTC().Round(0)
	labelled := make(chan error, 1)
	go func() {
		_, err := c.SetLabels(ctx, map[string]string{LabelStartedAt: startedAt.Format(time.RFC3339Nano)})
		labelled <- err
	}()
	if err := t.Start(ctx); err != nil {
		<-labelled
		t.Delete(ctx, client.WithProcessKill)
		return time.Time{}, fmt.Errorf("start task: %w", err)
	}
	if err := <-labelled; err != nil {
		return time.Time{}, fmt.Errorf("label container %s: %w", id, err)
	}
	// What State would read back from the label.
	startedAt, _ = time.Parse(time.RFC3339Nano, startedAt.Format(time.RFC3339Nano))
	return startedAt, nil
}

// SetLabels merges labels into the container's.
func (r *Runtime) SetLabels(ctx context.Context, id string, labels map[string]string) error {
	ctx = r.ctx(ctx)
	c, err := r.c.LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	_, err = c.SetLabels(ctx, labels)
	return err
}

// State reads the container's task state. A missing container is an error IsNotFound accepts.
func (r *Runtime) State(ctx context.Context, id string) (State, map[string]string, error) {
	ctx = r.ctx(ctx)
	// Two calls: the container's labels and its task. Agents call this for every container
	// at every sync, so it talks to the services directly rather than through client objects
	// (which would add two more round trips).
	info, err := r.c.ContainerService().Get(ctx, id)
	if err != nil {
		return State{}, nil, err
	}
	st := State{Status: StatusCreated}
	if ts := info.Labels[LabelStartedAt]; ts != "" {
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, ts)
	}
	resp, err := r.c.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: id})
	if err != nil {
		if errdefs.IsNotFound(errgrpc.ToNative(err)) {
			return st, info.Labels, nil
		}
		return State{}, nil, errgrpc.ToNative(err)
	}
	p := resp.GetProcess()
	switch p.GetStatus() {
	case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		st.Status = StatusRunning
		st.Pid = p.GetPid()
	case tasktypes.Status_STOPPED:
		st.Status = StatusExited
		st.ExitCode = int(p.GetExitStatus())
		if p.GetExitedAt() != nil {
			st.FinishedAt = p.GetExitedAt().AsTime()
		}
	default:
		st.Status = StatusCreated
	}
	return st, info.Labels, nil
}

// Wait returns a channel closed when the container's task exits or the wait breaks (for
// example because containerd restarted, or there is no task); the caller re-reads the state
// either way.
func (r *Runtime) Wait(ctx context.Context, id string) (<-chan struct{}, error) {
	ctx = r.ctx(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := r.c.TaskService().Wait(ctx, &tasks.WaitRequest{ContainerID: id})
		if err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			// containerd is away: do not have the caller spin on a wait that fails at once.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return done, nil
}

// Stop sends SIGTERM, waits up to grace for the task to exit, then SIGKILLs it.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	ctx = r.ctx(ctx)
	c, err := r.c.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	t, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	st, err := t.Status(ctx)
	if err == nil && st.Status == client.Stopped {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := t.Wait(wctx)
	if err != nil {
		return fmt.Errorf("wait for %s: %w", id, err)
	}
	if grace > 0 {
		if err := t.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("SIGTERM %s: %w", id, err)
		}
		select {
		case <-ch:
			return nil
		case <-time.After(grace):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := t.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("SIGKILL %s: %w", id, err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not exit 10s after SIGKILL", id)
	}
	return nil
}

// Remove kills and deletes the container's task, the container and its snapshot.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	ctx = r.ctx(ctx)
	c, err := r.c.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	if t, err := c.Task(ctx, nil); err == nil {
		if _, err := t.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task of %s: %w", id, err)
		}
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	return nil
}

// List returns every container of the namespace.
func (r *Runtime) List(ctx context.Context) ([]Container, error) {
	cs, err := r.c.ContainerService().List(r.ctx(ctx))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		out = append(out, Container{ID: c.ID, Labels: c.Labels})
	}
	return out, nil
}

// Exec runs cmd in the running container and returns its exit code. stdin may be nil; when it
// ends, the process's stdin is closed.
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	ctx = r.ctx(ctx)
	if len(cmd) == 0 {
		return -1, fmt.Errorf("exec: no command given (add command=...)")
	}
	c, err := r.c.LoadContainer(ctx, id)
	if err != nil {
		return -1, fmt.Errorf("load container %s: %w", id, err)
	}
	t, err := c.Task(ctx, nil)
	if err != nil {
		return -1, fmt.Errorf("container %s is not running: %w", id, err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return -1, fmt.Errorf("spec of %s: %w", id, err)
	}
	p := *spec.Process
	p.Args = cmd
	p.Terminal = false
	var b [6]byte
	rand.Read(b[:])
	execID := "exec-" + hex.EncodeToString(b[:])
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	ready := make(chan client.Process, 1)
	var in io.Reader
	if stdin != nil {
		in = &eofReader{r: stdin, onEOF: func() {
			proc := <-ready
			ready <- proc
			proc.CloseIO(context.WithoutCancel(ctx), client.WithStdinCloser)
		}}
	}
	proc, err := t.Exec(ctx, execID, &p, cio.NewCreator(cio.WithStreams(in, stdout, stderr)))
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	ready <- proc
	defer proc.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
	ch, err := proc.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return -1, fmt.Errorf("wait exec: %w", err)
	}
	if err := proc.Start(ctx); err != nil {
		return -1, fmt.Errorf("start exec %v: %w", cmd, err)
	}
	select {
	case st := <-ch:
		proc.IO().Wait()
		return int(st.ExitCode()), st.Error()
	case <-ctx.Done():
		proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		<-ch
		return -1, fmt.Errorf("exec %v: %w", cmd, ctx.Err())
	}
}

// eofReader calls onEOF once when the underlying reader ends.
type eofReader struct {
	r     io.Reader
	onEOF func()
	once  sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { go e.onEOF() })
	}
	return n, err
}
