package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/skiffnet/skiff/kubelet/podnet"
	"github.com/skiffnet/skiff/kubelet/runtime"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// resync is how often a worker looks at its pod without being told to: it catches exits a
// broken containerd wait stream missed.
const resync = 5 * time.Second

// Labels with a container's history, so an adopting agent keeps restart counts.
const (
	labelLastState = "skiff.last.state" // JSON ContainerStateTerminated
	labelImageID   = "skiff.image.id"
)

// podWorker owns one pod: it serializes everything done to it.
type podWorker struct {
	a       *Agent
	uid     types.UID
	trigger chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	pod     *corev1.Pod
	deleted bool
	ctrs    map[string]*ctrRec

	// Owned by the worker goroutine.
	net       *podnet.Pod
	podIP     string
	attached  bool
	etcDone   bool
	vols      map[string]string
	terminal  bool
	lastSent  *corev1.PodStatus
	lastRV    int64 // resourceVersion our last status write produced
	podReason string
	podMsg    string
	lastEvent map[string]string
	netReady  bool
	admitted  bool
}

// ctrRec is what the agent remembers of one container of the pod.
type ctrRec struct {
	name     string
	init     bool
	id       string
	adopted  bool
	restarts int32
	backoffN int
	failN    int // consecutive failures to create or start
	nextTry  time.Time
	last     *corev1.ContainerStateTerminated
	// waiting reason and message while not running.
	waitReason, waitMsg string
	imageID             string
	// probe state of the running instance (keyed by its start time).
	instance    time.Time
	probeCancel context.CancelFunc
	ready       bool
	started     bool
	waiting     bool // an exit waiter runs for instance
	state       runtime.State
	exists      bool
}

func newPodWorker(a *Agent, pod *corev1.Pod) *podWorker {
	ctx, cancel := context.WithCancel(context.Background())
	return &podWorker{a: a, uid: pod.UID, pod: pod, trigger: make(chan struct{}, 1), ctx: ctx, cancel: cancel, ctrs: map[string]*ctrRec{}, lastEvent: map[string]string{}}
}

func (w *podWorker) update(pod *corev1.Pod, deleted bool) {
	w.mu.Lock()
	w.pod = pod
	w.deleted = w.deleted || deleted
	w.mu.Unlock()
	w.kick()
}

func (w *podWorker) kick() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// containerID is the containerd ID of a pod's container: stable across agent restarts.
func containerID(uid types.UID, name string) string {
	h := sha256.Sum256([]byte(string(uid) + "/" + name))
	return "sk-" + hex.EncodeToString(h[:])[:24]
}

func (w *podWorker) run() {
	defer w.cancel()
	agentCtx := w.a.stopCtx()
	for {
		wait, done := w.sync(w.ctx)
		if done {
			return
		}
		if wait <= 0 || wait > resync {
			wait = resync
		}
		t := time.NewTimer(wait)
		select {
		case <-agentCtx.Done():
			t.Stop()
			w.stopProbes()
			return
		case <-w.trigger:
		case <-t.C:
		}
		t.Stop()
	}
}

func (w *podWorker) snapshot() (*corev1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.deleted
}

func (w *podWorker) rec(c *corev1.Container, init bool) *ctrRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.ctrs[c.Name]
	if r == nil {
		r = &ctrRec{name: c.Name, init: init, id: containerID(w.uid, c.Name)}
		w.ctrs[c.Name] = r
	}
	return r
}

// event records an event, once per distinct message for warnings that repeat every sync.
func (w *podWorker) event(pod *corev1.Pod, typ, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if typ == corev1.EventTypeWarning {
		if w.lastEvent[reason] == msg {
			return
		}
		w.lastEvent[reason] = msg
	}
	w.a.recorder.Event(pod, typ, reason, msg)
}

// sync brings the pod one step towards its spec and reports status. It returns when to look
// again, and done once the pod is gone and cleaned up.
func (w *podWorker) sync(ctx context.Context) (time.Duration, bool) {
	pod, deleted := w.snapshot()
	if deleted || pod.DeletionTimestamp != nil {
		w.terminate(ctx, pod, deleted)
		return 0, true
	}
	if !w.a.runtimeHealthy.Load() {
		return resync, false
	}
	if w.terminal || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		if !w.terminal {
			w.terminal = true
			w.podIP = pod.Status.PodIP
			w.finish(ctx, pod)
		}
		return resync, false
	}
	if !w.admitted {
		ok, wait, msg := w.a.admit(pod)
		switch {
		case wait:
			return 200 * time.Millisecond, false
		case !ok:
			w.terminal = true
			w.event(pod, corev1.EventTypeWarning, rejectReason, "%s", msg)
			w.pushRejected(ctx, pod, msg)
			return resync, false
		}
		w.admitted = true
	}
	next := resync
	soon := func(d time.Duration) {
		if d > 0 && d < next {
			next = d
		}
	}
	w.podReason, w.podMsg = "", ""
	netReady := w.setupNetwork(pod)
	if netReady && !w.netReady {
		w.a.trace(pod.UID, stepNetwork)
	}
	w.netReady = netReady
	ready := netReady
	if ready && w.vols == nil {
		vols, err := w.a.prepareVolumes(pod)
		if err != nil {
			w.podReason, w.podMsg = "FailedMount", err.Error()
			w.event(pod, corev1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed: %v", err)
			ready = false
		} else {
			w.vols = vols
		}
	}
	if ready && !w.etcDone {
		if err := w.a.writeEtcFiles(pod, w.podIP); err != nil {
			w.podReason, w.podMsg = "FailedCreatePodSandBox", err.Error()
			ready = false
		} else {
			w.etcDone = true
			w.a.trace(pod.UID, stepPrepared)
		}
	}
	policy := pod.Spec.RestartPolicy
	if policy == "" {
		policy = corev1.RestartPolicyAlways
	}
	initDone := true
	initFailed := false
	if ready {
		for i := range pod.Spec.InitContainers {
			c := &pod.Spec.InitContainers[i]
			r := w.rec(c, true)
			if err := w.observe(ctx, pod, r); err != nil {
				w.a.log.Debug("sync skipped", "pod", pod.Namespace+"/"+pod.Name, "err", err)
				return resync, false
			}
			if r.exists && r.state.Status == runtime.StatusExited && r.state.ExitCode == 0 {
				continue
			}
			initDone = false
			// Init containers restart on failure unless the pod's policy is Never.
			ipolicy := corev1.RestartPolicyOnFailure
			if policy == corev1.RestartPolicyNever {
				ipolicy = corev1.RestartPolicyNever
			}
			soon(w.ensure(ctx, pod, c, r, ipolicy))
			if r.exists && r.state.Status == runtime.StatusExited && r.state.ExitCode != 0 && policy == corev1.RestartPolicyNever {
				initFailed = true
			}
			break
		}
	} else {
		initDone = false
	}
	if initDone && !initFailed {
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			r := w.rec(c, false)
			if err := w.observe(ctx, pod, r); err != nil {
				w.a.log.Debug("sync skipped", "pod", pod.Namespace+"/"+pod.Name, "err", err)
				return resync, false
			}
			soon(w.ensure(ctx, pod, c, r, policy))
		}
	}
	st := w.status(pod, netReady)
	w.pushStatus(ctx, pod, st)
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		w.terminal = true
		w.finish(ctx, pod)
	}
	return next, false
}

// setupNetwork gives the pod its netns, veth and address (idempotent).
func (w *podWorker) setupNetwork(pod *corev1.Pod) bool {
	if pod.Spec.HostNetwork {
		w.podIP = w.a.nodeIP
		return true
	}
	if w.net == nil {
		p, err := w.a.net.Setup(pod.Namespace, pod.Name, string(pod.UID))
		if err != nil {
			w.podReason, w.podMsg = "FailedCreatePodSandBox", err.Error()
			w.event(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			return false
		}
		w.net = p
		w.podIP = p.IP.String()
	}
	if w.a.cfg.Datapath != nil && !w.attached {
		if err := w.a.cfg.Datapath.AttachPod(w.net.HostVeth); err != nil {
			w.event(pod, corev1.EventTypeWarning, "DatapathAttachFailed", "attach datapath to %s: %v", w.net.HostVeth, err)
		} else {
			w.attached = true
		}
	}
	return true
}

func (w *podWorker) netnsPath() string {
	if w.net == nil {
		if w.a.hostNS != nil {
			return w.a.hostNS.Path()
		}
		return ""
	}
	return w.net.NetNSPath
}

// observe reads a container's runtime state; a container found for the first time (after an
// agent restart) brings its restart count and last state from its labels.
func (w *podWorker) observe(ctx context.Context, pod *corev1.Pod, r *ctrRec) error {
	st, labels, err := w.a.rt.State(ctx, r.id)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if !runtime.IsNotFound(err) {
			// containerd is away (restarting?): know nothing new, change nothing.
			return fmt.Errorf("state of container %s: %w", r.name, err)
		}
		r.exists = false
		return nil
	}
	r.exists = true
	r.state = st
	if !r.adopted {
		r.adopted = true
		if n, err := strconv.Atoi(labels[runtime.LabelRestartCount]); err == nil {
			r.restarts = int32(n)
			r.backoffN = n
		}
		if s := labels[labelLastState]; s != "" {
			var t corev1.ContainerStateTerminated
			if json.Unmarshal([]byte(s), &t) == nil {
				r.last = &t
			}
		}
		r.imageID = labels[labelImageID]
		// Keep the readiness the API already has for this very instance, so an agent restart
		// does not flap the pod's endpoints.
		if st.Status == runtime.StatusRunning {
			for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.ContainerStatuses...), pod.Status.InitContainerStatuses...) {
				if cs.Name == r.name && cs.ContainerID == "containerd://"+r.id && cs.State.Running != nil &&
					cs.State.Running.StartedAt.Equal(&metav1.Time{Time: st.StartedAt.Truncate(time.Second)}) {
					r.ready = cs.Ready
					r.started = cs.Started != nil && *cs.Started
					r.instance = st.StartedAt
				}
			}
		}
	}
	return nil
}

// backoff is the wait before restart n (n = restarts so far): none for the first, then
// base doubling up to max.
func backoff(n int, base, max time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// ensure moves one container towards running (or finished, per policy) and returns when the
// worker should look again (0 = the regular resync).
func (w *podWorker) ensure(ctx context.Context, pod *corev1.Pod, c *corev1.Container, r *ctrRec, policy corev1.RestartPolicy) time.Duration {
	now := time.Now()
	switch {
	case !r.exists || r.state.Status == runtime.StatusCreated:
		if now.Before(r.nextTry) {
			w.setWaiting(r, backoffReason(r.waitReason), r.waitMsg)
			return time.Until(r.nextTry)
		}
		if err := w.launch(ctx, pod, c, r); err != nil {
			reason := "CreateContainerError"
			var ce *configError
			var se *startError
			switch {
			case errors.As(err, &se):
				reason = "RunContainerError"
				w.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
			case errors.Is(err, runtime.ErrImageNotFound):
				reason = "ErrImagePull"
				if c.ImagePullPolicy == corev1.PullNever {
					reason = "ErrImageNeverPull"
				}
				w.event(pod, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
			case errors.As(err, &ce):
				reason = "CreateContainerConfigError"
				w.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
			default:
				w.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
			}
			r.failN++
			r.nextTry = time.Now().Add(backoff(r.failN, w.a.cfg.BackoffBase, w.a.cfg.BackoffMax))
			w.setWaiting(r, reason, err.Error())
			return time.Until(r.nextTry)
		}
		r.failN = 0
		w.watch(pod, c, r)
		return 0
	case r.state.Status == runtime.StatusRunning:
		w.setWaiting(r, "", "")
		w.watch(pod, c, r)
		return 0
	}
	// Exited.
	w.stopProbesOf(r)
	restart := policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && r.state.ExitCode != 0)
	if !restart {
		w.setWaiting(r, "", "")
		return 0
	}
	if r.state.FinishedAt.Sub(r.state.StartedAt) > 10*time.Minute {
		r.backoffN = 0 // ran long enough: forget earlier crashes
	}
	at := r.state.FinishedAt.Add(backoff(r.backoffN, w.a.cfg.BackoffBase, w.a.cfg.BackoffMax))
	if now.Before(at) {
		w.setWaiting(r, "CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
			backoff(r.backoffN, w.a.cfg.BackoffBase, w.a.cfg.BackoffMax), c.Name, pod.Name, pod.Namespace, pod.UID))
		w.event(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
		return time.Until(at)
	}
	term := terminated(r, r.state)
	r.last = &term
	r.restarts++
	r.backoffN++
	// A restarted container gets a fresh container and root filesystem, as in Kubernetes;
	// its history travels in the labels.
	if err := w.launch(ctx, pod, c, r); err != nil {
		var se *startError
		if errors.As(err, &se) {
			w.setWaiting(r, "RunContainerError", err.Error())
		} else {
			w.setWaiting(r, "CreateContainerError", err.Error())
			r.exists = false
		}
		w.event(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		return w.a.cfg.BackoffBase
	}
	w.watch(pod, c, r)
	return 0
}

func backoffReason(r string) string {
	switch r {
	case "ErrImagePull", "ImagePullBackOff":
		return "ImagePullBackOff"
	case "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError":
		return r
	}
	return "CrashLoopBackOff"
}

func (w *podWorker) setWaiting(r *ctrRec, reason, msg string) {
	w.mu.Lock()
	r.waitReason, r.waitMsg = reason, msg
	w.mu.Unlock()
}

// configError marks a container whose env or mounts cannot be made (missing ConfigMap key...).
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }
