package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"time"

	"github.com/skiffnet/skiff/kubelet/probe"
	"github.com/skiffnet/skiff/kubelet/runtime"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

func (a *Agent) logPath(uid, container string, restart int32) string {
	return filepath.Join(a.podDir(uid), "logs", container, strconv.Itoa(int(restart))+".log")
}

// launch creates the containerd container for c and starts it. A failed start comes back as
// a *startError. Only the runtime calls hold one of the node's start slots: the spec (env from
// ConfigMaps and Secrets, mounts) is made before, and create and start of one container run
// back to back, so a container that got a slot is running when it gives it back.
func (w *podWorker) launch(ctx context.Context, pod *corev1.Pod, c *corev1.Container, r *ctrRec) error {
	a := w.a
	spec, err := w.containerSpec(ctx, pod, c, r)
	if err != nil {
		return err
	}
	a.startSem <- struct{}{}
	err = a.rt.Create(ctx, spec)
	var serr error
	var startedAt time.Time
	if err == nil {
		a.trace(pod.UID, stepCreated)
		startedAt, serr = a.rt.Start(ctx, r.id, a.logPath(string(pod.UID), c.Name, r.restarts))
	}
	<-a.startSem
	if err != nil {
		return err
	}
	w.event(pod, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
	w.event(pod, corev1.EventTypeNormal, "Created", "Created container %s", c.Name)
	if serr != nil {
		return &startError{serr}
	}
	a.trace(pod.UID, stepStarted)
	w.event(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	// What State would say now, without asking: the first status can go out at once. An
	// exit right after the start is the exit waiter's news.
	// A container this agent made is not one to adopt: its history is what r holds, and the
	// readiness its probes find must not be overwritten by an older status from the API.
	w.mu.Lock()
	r.exists = true
	r.adopted = true
	r.state = runtime.State{Status: runtime.StatusRunning, StartedAt: startedAt}
	w.mu.Unlock()
	return nil
}

// startError is a container that was created but did not start (bad command...).
type startError struct{ err error }

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// containerSpec is what the runtime gets for c: image, command, env, mounts and limits.
func (w *podWorker) containerSpec(ctx context.Context, pod *corev1.Pod, c *corev1.Container, r *ctrRec) (runtime.ContainerSpec, error) {
	a := w.a
	img, err := a.rt.Image(ctx, c.Image)
	if err != nil {
		return runtime.ContainerSpec{}, err
	}
	if !r.adopted || r.imageID == "" {
		r.imageID = img.Name() + "@" + img.Target().Digest.String()
	}
	var svcs []*corev1.Service
	if a.services != nil {
		svcs, _ = a.services.List(labels.Everything())
	}
	env, err := makeEnv(envInput{Pod: pod, C: c, Services: svcs, PodIP: w.podIP, HostIP: a.nodeIP, Objects: a.objects, NotFound: a.notFound})
	if err != nil {
		return runtime.ContainerSpec{}, &configError{err}
	}
	mounts, err := a.containerMounts(pod, c, w.vols)
	if err != nil {
		return runtime.ContainerSpec{}, &configError{err}
	}
	host, _ := podHostname(pod, a.cfg.ClusterDomain)
	spec := runtime.ContainerSpec{
		ID:    r.id,
		Image: c.Image,
		Labels: map[string]string{
			runtime.LabelPodNamespace:  pod.Namespace,
			runtime.LabelPodName:       pod.Name,
			runtime.LabelPodUID:        string(pod.UID),
			runtime.LabelContainerName: c.Name,
			runtime.LabelContainerKind: map[bool]string{true: "init", false: "app"}[r.init],
			runtime.LabelRestartCount:  strconv.Itoa(int(r.restarts)),
			labelImageID:               r.imageID,
		},
		Command:    c.Command,
		Args:       c.Args,
		Env:        env,
		WorkingDir: c.WorkingDir,
		NetNSPath:  w.netnsPath(),
		Hostname:   host,
		Mounts:     mounts,
		ShimGroup:  "skiff-" + string(pod.UID),
	}
	if r.last != nil {
		lb, _ := json.Marshal(r.last)
		spec.Labels[labelLastState] = string(lb)
	}
	if pod.Spec.HostNetwork {
		spec.Hostname = ""
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		spec.CPULimitMilli = q.MilliValue()
	}
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		spec.CPUSharesMilli = q.MilliValue()
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		spec.MemoryLimit = q.Value()
	}
	return spec, nil
}

// watch makes sure a running instance has an exit waiter and its probes.
func (w *podWorker) watch(pod *corev1.Pod, c *corev1.Container, r *ctrRec) {
	w.mu.Lock()
	defer w.mu.Unlock()
	inst := r.state.StartedAt
	newInstance := !r.instance.Equal(inst)
	if newInstance {
		if r.probeCancel != nil {
			r.probeCancel()
			r.probeCancel = nil
		}
		r.ready, r.started = false, false
		r.instance = inst
		r.waiting = false
	}
	id := r.id
	if !r.waiting {
		// The exit waiter ends on exit or when containerd goes away; either way the next
		// sync looks again (and starts a new waiter if the container still runs).
		r.waiting = true
		go func() {
			done, err := w.a.rt.Wait(w.ctx, id)
			if err == nil {
				<-done
			}
			w.mu.Lock()
			if r.instance.Equal(inst) {
				r.waiting = false
			}
			w.mu.Unlock()
			w.kick()
		}()
	}
	if r.probeCancel != nil {
		return // probes already run for this instance
	}
	pctx, cancel := context.WithCancel(w.ctx)
	r.probeCancel = cancel
	if r.init {
		return // init containers have no probes
	}
	ps := probe.Probes{Startup: c.StartupProbe, Liveness: c.LivenessProbe, Readiness: c.ReadinessProbe}
	// Without a startup probe the container counts as started at once, and without a
	// readiness probe as ready: set here so the first status already says so.
	if ps.Startup == nil {
		r.started = true
		if ps.Readiness == nil {
			r.ready = true
		}
	}
	if ps.Startup == nil && ps.Liveness == nil && ps.Readiness == nil {
		return
	}
	podIP := w.podIP
	prober := &probe.Prober{
		Dial: w.a.dial,
		Exec: func(ctx context.Context, cmd []string) (int, string, error) {
			var out bytes.Buffer
			code, err := w.a.rt.Exec(ctx, id, cmd, nil, &out, &out)
			return code, out.String(), err
		},
	}
	grace := gracePeriod(pod)
	started := inst
	if started.IsZero() {
		started = time.Now()
	}
	go probe.Run(pctx, ps, started, w.a.cfg.ProbeUnit,
		func(ctx context.Context, p *corev1.Probe) (probe.Result, string) {
			return prober.Do(ctx, p, podIP, c, w.a.cfg.ProbeUnit)
		},
		func(kind probe.Kind, res probe.Result, msg string) {
			w.mu.Lock()
			if !r.instance.Equal(inst) {
				w.mu.Unlock()
				return
			}
			switch {
			case kind == probe.Startup && res == probe.Success:
				r.started = true
				if ps.Readiness == nil {
					r.ready = true
				}
			case kind == probe.Readiness:
				r.ready = res == probe.Success
			}
			w.mu.Unlock()
			if res == probe.Failure {
				w.a.recorder.Eventf(pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, msg)
			}
			if res == probe.Failure && (kind == probe.Liveness || kind == probe.Startup) {
				w.a.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Container %s failed %s probe, will be restarted", c.Name, map[probe.Kind]string{probe.Liveness: "liveness", probe.Startup: "startup"}[kind])
				go func() {
					if err := w.a.rt.Stop(w.ctx, id, grace); err != nil {
						w.a.log.Warn("kill unhealthy container", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "err", err)
					}
					w.kick()
				}()
			}
			w.kick()
		})
}

func (w *podWorker) stopProbesOf(r *ctrRec) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.probeCancel != nil {
		r.probeCancel()
		r.probeCancel = nil
	}
	r.waiting = false
	r.ready = false
}

func (w *podWorker) stopProbes() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.ctrs {
		if r.probeCancel != nil {
			r.probeCancel()
			r.probeCancel = nil
		}
		r.waiting = false
	}
}

func gracePeriod(pod *corev1.Pod) time.Duration {
	g := int64(30)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		g = *pod.DeletionGracePeriodSeconds
	}
	if g < 0 {
		g = 0
	}
	return time.Duration(g) * time.Second
}

func mt(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }

func terminated(r *ctrRec, st runtime.State) corev1.ContainerStateTerminated {
	reason := "Completed"
	if st.ExitCode != 0 {
		reason = "Error"
	}
	return corev1.ContainerStateTerminated{
		ExitCode:    int32(st.ExitCode),
		Reason:      reason,
		StartedAt:   mt(st.StartedAt),
		FinishedAt:  mt(st.FinishedAt),
		ContainerID: "containerd://" + r.id,
	}
}

// containerStatus reports one container as the API shows it.
func (w *podWorker) containerStatus(c *corev1.Container, r *ctrRec) corev1.ContainerStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: r.imageID, RestartCount: r.restarts}
	if r.exists {
		cs.ContainerID = "containerd://" + r.id
	}
	if r.last != nil {
		cs.LastTerminationState.Terminated = r.last.DeepCopy()
	}
	switch {
	case r.waitReason != "":
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: r.waitReason, Message: r.waitMsg}
	case r.exists && r.state.Status == runtime.StatusRunning:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: mt(r.state.StartedAt)}
		cs.Ready = r.ready
		cs.Started = ptr.To(r.started)
	case r.exists && r.state.Status == runtime.StatusExited:
		t := terminated(r, r.state)
		cs.State.Terminated = &t
		cs.Started = ptr.To(false)
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	if !r.init && cs.Started == nil {
		cs.Started = ptr.To(false)
	}
	return cs
}

// status computes the pod's status from what the worker knows.
func (w *podWorker) status(pod *corev1.Pod, netReady bool) corev1.PodStatus {
	in := statusInput{PodIP: w.podIP, HostIP: w.a.nodeIP, NetworkReady: netReady}
	if w.podReason != "" {
		in.Message = w.podReason + ": " + w.podMsg
	}
	get := func(c *corev1.Container, init bool) *ctrRec {
		w.mu.Lock()
		defer w.mu.Unlock()
		r := w.ctrs[c.Name]
		if r == nil {
			r = &ctrRec{name: c.Name, init: init, id: containerID(w.uid, c.Name)}
			if w.podReason != "" {
				r.waitReason, r.waitMsg = "ContainerCreating", w.podReason+": "+w.podMsg
			}
		}
		return r
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := w.containerStatus(c, get(c, true))
		if cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0 {
			cs.Ready = true
		}
		cs.Started = nil
		in.Init = append(in.Init, cs)
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		in.App = append(in.App, w.containerStatus(c, get(c, false)))
	}
	if in.Init == nil {
		in.Init = nil
	}
	return buildStatus(pod, in, mt(time.Now()))
}

// pushStatus writes the status if it changed.
func (w *podWorker) pushStatus(ctx context.Context, pod *corev1.Pod, st corev1.PodStatus) {
	// Compare with what we last wrote only while the informer has not caught up with that
	// write. Once it shows a newer object, someone else may have changed the status (the node
	// lifecycle controller marks pods NotReady when the node's lease lapses), and that is
	// what must be corrected.
	cmp := pod.Status
	if w.lastSent != nil && resourceVersion(pod) <= w.lastRV {
		cmp = *w.lastSent
	}
	if !statusChanged(cmp, st) {
		return
	}
	pods := w.a.client.CoreV1().Pods(pod.Namespace)
	p := pod.DeepCopy()
	p.Status = st
	out, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil && apierrors.IsConflict(err) {
		cur, gerr := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if gerr == nil && cur.UID == pod.UID {
			// Recompute against the current object so conditions others own are kept.
			st = w.status(cur, w.netReady)
			cur.Status = st
			out, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		if ctx.Err() == nil && !apierrors.IsNotFound(err) {
			w.a.log.Warn("update pod status", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
		w.lastSent = nil
		return
	}
	w.lastSent, w.lastRV = &st, resourceVersion(out)
	if st.Phase == corev1.PodRunning && podReadyStatus(st) {
		w.a.trace(pod.UID, stepReady)
	}
}

// resourceVersion is the object's etcd revision (skiff's resourceVersion is the ModRevision),
// 0 if it is not a number.
func resourceVersion(p *corev1.Pod) int64 {
	if p == nil {
		return 0
	}
	n, _ := strconv.ParseInt(p.ResourceVersion, 10, 64)
	return n
}

func podReadyStatus(st corev1.PodStatus) bool {
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// finish releases what a finished pod no longer needs: probes and network. Containers stay
// for their logs until the pod is deleted.
func (w *podWorker) finish(ctx context.Context, pod *corev1.Pod) {
	w.stopProbes()
	w.teardownNetwork(pod)
}

func (w *podWorker) teardownNetwork(pod *corev1.Pod) {
	if pod.Spec.HostNetwork {
		return
	}
	if w.a.cfg.Datapath != nil && w.net != nil {
		if err := w.a.cfg.Datapath.DetachPod(w.net.HostVeth); err != nil {
			w.a.log.Debug("detach datapath", "veth", w.net.HostVeth, "err", err)
		}
	}
	if err := w.a.net.Teardown(pod.Namespace, pod.Name, string(pod.UID)); err != nil {
		w.a.log.Warn("tear down pod network", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
	w.net = nil
	w.attached = false
}

// pushRejected writes the final status of a pod admission refused.
func (w *podWorker) pushRejected(ctx context.Context, pod *corev1.Pod, msg string) {
	pods := w.a.client.CoreV1().Pods(pod.Namespace)
	for i := 0; i < 3; i++ {
		p := pod.DeepCopy()
		p.Status = rejectedStatus(pod, w.a.nodeIP, msg)
		_, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if err == nil || !apierrors.IsConflict(err) {
			if err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
				w.a.log.Warn("update status of rejected pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			}
			return
		}
		cur, gerr := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if gerr != nil || cur.UID != pod.UID {
			return
		}
		pod = cur
	}
}
