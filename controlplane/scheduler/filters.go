package scheduler

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// Reasons a node is filtered out, worded as upstream so users recognise them.
const (
	reasonUnschedulable = "node(s) were unschedulable"
	reasonNotReady      = "node(s) were not ready"
	reasonAffinity      = "node(s) didn't match Pod's node affinity/selector"
	reasonPorts         = "node(s) didn't have free ports for the requested pod ports"
	reasonTooManyPods   = "Too many pods"
	reasonCPU           = "Insufficient cpu"
	reasonMemory        = "Insufficient memory"
	reasonSpread        = "node(s) didn't match pod topology spread constraints"
	reasonNodeName      = "node(s) didn't match the requested node name"
)

// ToleratesTaint reports whether one of tols tolerates taint.
func ToleratesTaint(tols []corev1.Toleration, taint *corev1.Taint) (bool, *corev1.Toleration) {
	for i := range tols {
		if tolerationMatches(&tols[i], taint) {
			return true, &tols[i]
		}
	}
	return false, nil
}

func tolerationMatches(t *corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key == "" {
		// An empty key with Exists tolerates everything.
		return t.Operator == corev1.TolerationOpExists
	}
	if t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case corev1.TolerationOpExists:
		return true
	case "", corev1.TolerationOpEqual:
		return t.Value == taint.Value
	}
	return false
}

// untoleratedTaint returns the first NoSchedule/NoExecute taint the pod does not tolerate.
func untoleratedTaint(pod *corev1.Pod, node *corev1.Node) *corev1.Taint {
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if ok, _ := ToleratesTaint(pod.Spec.Tolerations, t); !ok {
			return t
		}
	}
	return nil
}

// matchesNodeSelectorAndAffinity checks spec.nodeSelector and the required node affinity.
func matchesNodeSelectorAndAffinity(pod *corev1.Pod, node *corev1.Node) bool {
	for k, v := range pod.Spec.NodeSelector {
		if lv, ok := node.Labels[k]; !ok || lv != v {
			return false
		}
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	return MatchNodeSelectorTerms(a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms, node)
}

// MatchNodeSelectorTerms: terms are ORed, the requirements of one term ANDed.
// An empty term list matches nothing, as upstream.
func MatchNodeSelectorTerms(terms []corev1.NodeSelectorTerm, node *corev1.Node) bool {
	for _, term := range terms {
		if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
			continue
		}
		ok := true
		for _, r := range term.MatchExpressions {
			v, has := node.Labels[r.Key]
			if !matchRequirement(r, v, has) {
				ok = false
				break
			}
		}
		for _, r := range term.MatchFields {
			if !ok {
				break
			}
			if r.Key != "metadata.name" || !matchRequirement(r, node.Name, true) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func matchRequirement(r corev1.NodeSelectorRequirement, v string, has bool) bool {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		if !has {
			return false
		}
		for _, x := range r.Values {
			if x == v {
				return true
			}
		}
		return false
	case corev1.NodeSelectorOpNotIn:
		for _, x := range r.Values {
			if has && x == v {
				return false
			}
		}
		return true
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !has || len(r.Values) != 1 {
			return false
		}
		nv, err1 := strconv.ParseInt(v, 10, 64)
		rv, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return nv > rv
		}
		return nv < rv
	}
	return false
}

func portsConflict(pod *corev1.Pod, n *nodeInfo) bool {
	for _, hp := range hostPorts(pod) {
		for _, ip := range n.ports[hp.key] {
			if ip == "" || hp.ip == "" || ip == hp.ip {
				return true
			}
		}
	}
	return false
}

// filterNode returns the reasons n cannot run pod (nil: it fits).
// Cheap checks first; the resource check reports every short resource, as upstream.
func filterNode(pod *corev1.Pod, req resources, n *nodeInfo) []string {
	node := n.node
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		return []string{reasonNodeName}
	}
	if node.Spec.Unschedulable {
		tolerated, _ := ToleratesTaint(pod.Spec.Tolerations, &corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
		if !tolerated {
			return []string{reasonUnschedulable}
		}
	}
	if !matchesNodeSelectorAndAffinity(pod, node) {
		return []string{reasonAffinity}
	}
	if t := untoleratedTaint(pod, node); t != nil {
		return []string{fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)}
	}
	if !n.ready {
		return []string{reasonNotReady}
	}
	if portsConflict(pod, n) {
		return []string{reasonPorts}
	}
	var out []string
	if int64(len(n.pods))+1 > n.allocPods {
		out = append(out, reasonTooManyPods)
	}
	if req.milliCPU > 0 && n.requested.milliCPU+req.milliCPU > n.allocatable.milliCPU {
		out = append(out, reasonCPU)
	}
	if req.memory > 0 && n.requested.memory+req.memory > n.allocatable.memory {
		out = append(out, reasonMemory)
	}
	return out
}
