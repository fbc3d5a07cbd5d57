package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// spreadState is one topologySpreadConstraint evaluated against the cache:
// how many matching pods each topology domain already holds.
type spreadState struct {
	c         corev1.TopologySpreadConstraint
	counts    map[string]int
	min       int
	selfMatch int
}

func buildSpread(pod *corev1.Pod, nodes []*nodeInfo) []spreadState {
	var out []spreadState
	for _, c := range pod.Spec.TopologySpreadConstraints {
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil || c.LabelSelector == nil {
			sel = labels.Nothing()
		}
		for _, k := range c.MatchLabelKeys {
			if v, ok := pod.Labels[k]; ok {
				if r, err := labels.NewRequirement(k, selection.Equals, []string{v}); err == nil {
					sel = sel.Add(*r)
				}
			}
		}
		st := spreadState{c: c, counts: map[string]int{}}
		if sel.Matches(labels.Set(pod.Labels)) {
			st.selfMatch = 1
		}
		honorAffinity := c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor
		for _, n := range nodes {
			d, ok := n.node.Labels[c.TopologyKey]
			if !ok {
				continue
			}
			if honorAffinity && !matchesNodeSelectorAndAffinity(pod, n.node) {
				continue
			}
			cnt := 0
			for _, ps := range n.pods {
				p := ps.pod
				if p.Namespace == pod.Namespace && p.DeletionTimestamp == nil && sel.Matches(labels.Set(p.Labels)) {
					cnt++
				}
			}
			st.counts[d] += cnt
		}
		st.min = -1
		for _, v := range st.counts {
			if st.min < 0 || v < st.min {
				st.min = v
			}
		}
		if st.min < 0 || (c.MinDomains != nil && int32(len(st.counts)) < *c.MinDomains) {
			st.min = 0
		}
		out = append(out, st)
	}
	return out
}

// spreadFits applies the DoNotSchedule constraints to one node.
func spreadFits(states []spreadState, node *corev1.Node) bool {
	for i := range states {
		st := &states[i]
		if st.c.WhenUnsatisfiable != corev1.DoNotSchedule {
			continue
		}
		d, ok := node.Labels[st.c.TopologyKey]
		if !ok {
			return false
		}
		if st.counts[d]+st.selfMatch-st.min > int(st.c.MaxSkew) {
			return false
		}
	}
	return true
}

// spreadCount is the number of matching pods in the node's domains for the
// ScheduleAnyway constraints: lower is better.
func spreadCount(states []spreadState, node *corev1.Node) int {
	total := 0
	for i := range states {
		st := &states[i]
		if st.c.WhenUnsatisfiable == corev1.DoNotSchedule {
			continue
		}
		if d, ok := node.Labels[st.c.TopologyKey]; ok {
			total += st.counts[d]
		}
	}
	return total
}
