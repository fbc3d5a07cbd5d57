package kubelet

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// statusInput is what the agent knows about a pod at one sync.
type statusInput struct {
	Init, App    []corev1.ContainerStatus
	PodIP        string
	HostIP       string
	NetworkReady bool
	// Reason/Message explain a pod-level problem (for example a volume that cannot be mounted).
	Reason, Message string
}

// podPhase follows the kubelet's rules: init containers first, then the app containers'
// states against the restart policy.
func podPhase(pod *corev1.Pod, init, app []corev1.ContainerStatus) corev1.PodPhase {
	policy := pod.Spec.RestartPolicy
	if policy == "" {
		policy = corev1.RestartPolicyAlways
	}
	for _, s := range init {
		if t := s.State.Terminated; t != nil && t.ExitCode != 0 && policy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
		if !initDone(s) {
			return corev1.PodPending
		}
	}
	var running, waiting, stopped, succeeded int
	for _, s := range app {
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil && s.LastTerminationState.Terminated != nil:
			stopped++
			if s.LastTerminationState.Terminated.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	switch {
	case len(app) == 0:
		return corev1.PodPending
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case policy == corev1.RestartPolicyAlways:
		return corev1.PodRunning
	case stopped == succeeded:
		// Only terminated (not waiting-to-restart) containers count as finished.
		for _, s := range app {
			if s.State.Terminated == nil {
				return corev1.PodRunning
			}
		}
		return corev1.PodSucceeded
	case policy == corev1.RestartPolicyNever:
		return corev1.PodFailed
	}
	return corev1.PodRunning
}

func initDone(s corev1.ContainerStatus) bool {
	return s.State.Terminated != nil && s.State.Terminated.ExitCode == 0
}

// buildStatus computes the pod's status, keeping transition times of conditions that did not
// change and the start time.
func buildStatus(pod *corev1.Pod, in statusInput, now metav1.Time) corev1.PodStatus {
	old := pod.Status
	st := corev1.PodStatus{
		Phase:                 podPhase(pod, in.Init, in.App),
		HostIP:                in.HostIP,
		PodIP:                 in.PodIP,
		InitContainerStatuses: in.Init,
		ContainerStatuses:     in.App,
		QOSClass:              qosClass(pod),
		StartTime:             old.StartTime,
		Reason:                in.Reason,
		Message:               in.Message,
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	if in.HostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: in.HostIP}}
	}
	if in.PodIP != "" {
		st.PodIPs = []corev1.PodIP{{IP: in.PodIP}}
	}
	initialized := true
	for _, s := range in.Init {
		if !initDone(s) {
			initialized = false
		}
	}
	containersReady := len(in.App) > 0
	for _, s := range in.App {
		if !s.Ready {
			containersReady = false
		}
	}
	ready := containersReady
	for _, g := range pod.Spec.ReadinessGates {
		gateOK := false
		for _, c := range old.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				gateOK = true
			}
		}
		ready = ready && gateOK
	}
	finished := st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed
	reason := func(ok bool, notReady string) string {
		if ok {
			return ""
		}
		if finished {
			return "PodCompleted"
		}
		return notReady
	}
	conds := []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: boolCond(in.NetworkReady)},
		{Type: corev1.PodInitialized, Status: boolCond(initialized), Reason: reason(initialized, "ContainersNotInitialized")},
		{Type: corev1.ContainersReady, Status: boolCond(containersReady), Reason: reason(containersReady, "ContainersNotReady")},
		{Type: corev1.PodReady, Status: boolCond(ready), Reason: reason(ready, "ContainersNotReady")},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	}
	// Keep conditions other components own (readiness gates and the like).
	own := map[corev1.PodConditionType]bool{}
	for _, c := range conds {
		own[c.Type] = true
	}
	for _, c := range old.Conditions {
		if !own[c.Type] {
			conds = append(conds, c)
		}
	}
	for i := range conds {
		c := &conds[i]
		if !own[c.Type] {
			continue
		}
		c.LastTransitionTime = now
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	st.Conditions = conds
	return st
}

func boolCond(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

// statusChanged ignores what the API server may rewrite (time precision).
func statusChanged(a, b corev1.PodStatus) bool {
	return !equality.Semantic.DeepEqual(a, b)
}

func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits, any := 0, 0, false
	guaranteed := true
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if hasReq || hasLim {
				any = true
			}
			if hasReq {
				requests++
			}
			if hasLim {
				limits++
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}
