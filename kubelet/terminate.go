package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/skiffnet/skiff/kubelet/runtime"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// terminate stops a deleted pod: SIGTERM to every container, SIGKILL after the grace period,
// then removes containers, network and files, and finally the Pod object.
func (w *podWorker) terminate(ctx context.Context, pod *corev1.Pod, deleted bool) {
	a := w.a
	w.stopProbes()
	grace := gracePeriod(pod)
	if !w.terminal {
		w.event(pod, corev1.EventTypeNormal, "Killing", "Stopping pod (grace period %s)", grace)
	}
	var wg sync.WaitGroup
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		id := containerID(pod.UID, c.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.rt.Stop(ctx, id, grace); err != nil {
				a.log.Warn("stop container", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "err", err)
			}
		}()
	}
	wg.Wait()
	if !deleted {
		// Report the final container states before the object goes.
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			w.observe(ctx, pod, w.rec(c, false))
		}
		w.pushStatus(ctx, pod, w.status(pod, w.netReady))
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if err := a.rt.Remove(ctx, containerID(pod.UID, c.Name)); err != nil {
			a.log.Warn("remove container", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "err", err)
		}
	}
	w.teardownNetwork(pod)
	os.RemoveAll(a.podDir(string(pod.UID)))
	if !deleted {
		err := a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			a.log.Warn("delete pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
	}
	a.log.Info("pod stopped", "pod", pod.Namespace+"/"+pod.Name)
}

// gcLoop removes what belongs to pods this node no longer has: containers, addresses and
// netns, pod directories (after an agent restart, a pod may have been deleted meanwhile).
func (a *Agent) gcLoop(ctx context.Context) {
	for {
		a.gc(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute):
		}
	}
}

func (a *Agent) known(uid types.UID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.workers[uid]; ok {
		return true
	}
	pods, _ := a.pods.List(everythingSel())
	for _, p := range pods {
		if p.UID == uid {
			return true
		}
	}
	return false
}

func (a *Agent) gc(ctx context.Context) {
	cs, err := a.rt.List(ctx)
	if err != nil {
		a.log.Warn("gc: list containers", "err", err)
		return
	}
	for _, c := range cs {
		uid := types.UID(c.Labels[runtime.LabelPodUID])
		if uid == "" || a.known(uid) {
			continue
		}
		a.log.Info("gc: removing container of a gone pod", "id", c.ID, "pod", c.Labels[runtime.LabelPodNamespace]+"/"+c.Labels[runtime.LabelPodName])
		if err := a.rt.Stop(ctx, c.ID, 2*time.Second); err != nil {
			a.log.Warn("gc: stop", "id", c.ID, "err", err)
		}
		if err := a.rt.Remove(ctx, c.ID); err != nil {
			a.log.Warn("gc: remove", "id", c.ID, "err", err)
		}
	}
	for uid, key := range a.net.Owners() {
		if !a.known(types.UID(uid)) {
			a.log.Info("gc: releasing network of a gone pod", "pod", key)
			if err := a.net.ReleaseOwner(uid, key); err != nil {
				a.log.Warn("gc: release network", "pod", key, "err", err)
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(a.cfg.DataDir, "pods"))
	for _, e := range ents {
		if !a.known(types.UID(e.Name())) {
			os.RemoveAll(filepath.Join(a.cfg.DataDir, "pods", e.Name()))
		}
	}
}
