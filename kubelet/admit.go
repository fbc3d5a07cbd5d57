package kubelet

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Admission: like the kubelet, the agent checks a new pod against what already runs on the
// node before it starts anything. Today that is host ports: two pods that want the same port
// in the node's network namespace (hostNetwork pods' container ports, or hostPort) cannot
// both run, and the second would only crash-loop on "address already in use". It is rejected
// instead, with a status that says which pod holds the port.

// rejectReason is the status reason of a pod the agent refused, as the kubelet's NodePorts
// admission check reports it.
const rejectReason = "NodePorts"

// hostPort is one port a pod takes in the node's network namespace.
type hostPort struct {
	IP       string // "" = every address
	Protocol corev1.Protocol
	Port     int32
}

func (p hostPort) String() string {
	s := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
	if p.IP != "" {
		s = p.IP + ":" + s
	}
	return s
}

// overlaps reports whether two host ports cannot both be bound.
func (p hostPort) overlaps(q hostPort) bool {
	return p.Port == q.Port && p.Protocol == q.Protocol && (p.IP == "" || q.IP == "" || p.IP == q.IP)
}

// podHostPorts lists the ports pod takes on the node: every container port of a hostNetwork
// pod (its hostPort defaults to the container port), and the hostPorts of other pods.
func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				port := p.HostPort
				if port == 0 && pod.Spec.HostNetwork {
					port = p.ContainerPort
				}
				if port == 0 {
					continue
				}
				proto := p.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				ip := p.HostIP
				if ip == "0.0.0.0" || ip == "::" {
					ip = ""
				}
				out = append(out, hostPort{IP: ip, Protocol: proto, Port: port})
			}
		}
	}
	return out
}

// portConflict returns a message naming the first port of pod that one of others already
// takes, or "" when there is none.
func portConflict(pod *corev1.Pod, others []*corev1.Pod) string {
	want := podHostPorts(pod)
	if len(want) == 0 {
		return ""
	}
	sort.Slice(others, func(i, j int) bool {
		return others[i].Namespace+"/"+others[i].Name < others[j].Namespace+"/"+others[j].Name
	})
	for _, o := range others {
		if o.UID == pod.UID {
			continue
		}
		for _, h := range podHostPorts(o) {
			for _, w := range want {
				if w.overlaps(h) {
					return fmt.Sprintf("host port %s is already used by pod %s/%s on this node", w, o.Namespace, o.Name)
				}
			}
		}
	}
	return ""
}

// admit decides whether the agent may start pod. It returns ok=false with wait=true while the
// agent does not yet know every pod of the node (just after a start), and a message when the
// pod is rejected. A pod admitted once (by this agent or one before it: it has a start time)
// stays admitted.
func (a *Agent) admit(pod *corev1.Pod) (ok, wait bool, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.admitted[pod.UID] || pod.Status.StartTime != nil {
		a.admitted[pod.UID] = true
		return true, false, ""
	}
	if len(podHostPorts(pod)) == 0 {
		a.admitted[pod.UID] = true
		return true, false, ""
	}
	if a.podsSynced == nil || !a.podsSynced() {
		return false, true, ""
	}
	var holders []*corev1.Pod
	all, _ := a.pods.List(everythingSel())
	for _, p := range all {
		if p.Spec.NodeName != a.cfg.NodeName || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		// Only pods that run (or are starting) hold their ports; a pending pod that was
		// rejected or not yet looked at does not.
		if a.admitted[p.UID] || p.Status.StartTime != nil {
			holders = append(holders, p)
		}
	}
	if c := portConflict(pod, holders); c != "" {
		return false, false, "Pod was rejected: " + c + " (Predicate NodePorts failed): free the port or schedule the pod elsewhere"
	}
	a.admitted[pod.UID] = true
	return true, false, ""
}

// rejectedStatus is the final status of a pod the agent refused to run.
func rejectedStatus(pod *corev1.Pod, hostIP, msg string) corev1.PodStatus {
	st := *pod.Status.DeepCopy()
	st.Phase = corev1.PodFailed
	st.Reason = rejectReason
	st.Message = msg
	st.HostIP = hostIP
	if hostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: hostIP}}
	}
	has := func(t corev1.PodConditionType) bool {
		for _, c := range st.Conditions {
			if c.Type == t {
				return true
			}
		}
		return false
	}
	if !has(corev1.PodScheduled) {
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
	}
	return st
}
