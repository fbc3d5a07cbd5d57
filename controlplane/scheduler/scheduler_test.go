package scheduler

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func testScheduler() *Scheduler {
	cl := fake.NewClientset()
	return New(cl, informers.NewSharedInformerFactory(cl, 0), Options{})
}

func mkNode(name, mem string, mutate func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse(mem), corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	if mutate != nil {
		mutate(n)
	}
	return n
}

var podSeq int

func mkPod(mem string, mutate func(*corev1.Pod)) *corev1.Pod {
	podSeq++
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", podSeq), Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%d", podSeq)), Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	if mem != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(mem)}
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func TestFailureMessage(t *testing.T) {
	s := testScheduler()
	s.cache.setNode(mkNode("n1", "1Gi", nil))
	s.cache.setNode(mkNode("n2", "1Gi", nil))
	s.cache.setNode(mkNode("n3", "8Gi", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}
	}))
	_, err := s.schedule(mkPod("2Gi", nil))
	want := "0/3 nodes are available: 2 Insufficient memory, 1 node(s) had untolerated taint {k: v}."
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// Tolerating the taint makes n3 fit.
	node, err := s.schedule(mkPod("2Gi", func(p *corev1.Pod) {
		p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpEqual, Value: "v", Effect: corev1.TaintEffectNoSchedule}}
	}))
	if err != nil || node != "n3" {
		t.Fatalf("tolerating pod: %s %v", node, err)
	}
}

func TestFilters(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*corev1.Node
		pod   *corev1.Pod
		want  string // node, or "" for unschedulable
	}{
		{"nodeSelector", []*corev1.Node{mkNode("a", "8Gi", nil), mkNode("b", "8Gi", func(n *corev1.Node) { n.Labels["disk"] = "ssd" })},
			mkPod("", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }), "b"},
		{"affinity", []*corev1.Node{mkNode("a", "8Gi", func(n *corev1.Node) { n.Labels["gen"] = "3" }), mkNode("b", "8Gi", func(n *corev1.Node) { n.Labels["gen"] = "5" })},
			mkPod("", func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
						{Key: "gen", Operator: corev1.NodeSelectorOpGt, Values: []string{"4"}},
						{Key: "zone", Operator: corev1.NodeSelectorOpDoesNotExist},
					}}}}}}
			}), "b"},
		{"unschedulable", []*corev1.Node{mkNode("a", "8Gi", func(n *corev1.Node) { n.Spec.Unschedulable = true }), mkNode("b", "8Gi", nil)}, mkPod("", nil), "b"},
		{"notReady", []*corev1.Node{mkNode("a", "8Gi", func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }), mkNode("b", "8Gi", nil)}, mkPod("", nil), "b"},
		{"noExecuteTaint", []*corev1.Node{mkNode("a", "8Gi", func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}}
		})}, mkPod("", nil), ""},
		{"cpu", []*corev1.Node{mkNode("a", "8Gi", nil)}, mkPod("", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("5")}
		}), ""},
		{"initContainerMax", []*corev1.Node{mkNode("a", "1Gi", nil)}, mkPod("100Mi", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}}}
		}), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testScheduler()
			for _, n := range tc.nodes {
				s.cache.setNode(n)
			}
			got, err := s.schedule(tc.pod)
			if got != tc.want {
				t.Fatalf("got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

func TestHostPortsAndPodCount(t *testing.T) {
	s := testScheduler()
	s.cache.setNode(mkNode("a", "8Gi", func(n *corev1.Node) { n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse("2") }))
	withPort := func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
	}
	p1 := mkPod("", withPort)
	if n, err := s.schedule(p1); err != nil || n != "a" {
		t.Fatal(n, err)
	}
	s.cache.place(p1, "a", true)
	_, err := s.schedule(mkPod("", withPort))
	if err == nil || err.Error() != "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports." {
		t.Fatalf("host port conflict: %v", err)
	}
	s.cache.place(mkPod("", nil), "a", false)
	if _, err := s.schedule(mkPod("", nil)); err == nil || err.Error() != "0/1 nodes are available: 1 Too many pods." {
		t.Fatalf("pod count: %v", err)
	}
	// Forgetting an assumed pod frees its port.
	s.cache.forget(p1.UID)
	if _, err := s.schedule(mkPod("", withPort)); err != nil {
		t.Fatal(err)
	}
}

func TestSpreading(t *testing.T) {
	s := testScheduler()
	for _, n := range []string{"a", "b", "c"} {
		s.cache.setNode(mkNode(n, "8Gi", nil))
	}
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: boolp(true)}
	count := map[string]int{}
	for i := 0; i < 9; i++ {
		p := mkPod("", func(p *corev1.Pod) { p.OwnerReferences = []metav1.OwnerReference{owner} })
		n, err := s.schedule(p)
		if err != nil {
			t.Fatal(err)
		}
		s.cache.place(p, n, true)
		count[n]++
	}
	for n, c := range count {
		if c != 3 {
			t.Errorf("node %s got %d of 9 pods of one owner: %v", n, c, count)
		}
	}
	// topologySpreadConstraints DoNotSchedule: maxSkew 1 over hostnames.
	s = testScheduler()
	for _, n := range []string{"a", "b"} {
		s.cache.setNode(mkNode(n, "8Gi", nil))
	}
	// Fill "a" with two matching pods first.
	for i := 0; i < 2; i++ {
		s.cache.place(mkPod("", func(p *corev1.Pod) { p.Labels["spread"] = "yes" }), "a", false)
	}
	tsc := func(p *corev1.Pod) {
		p.Labels["spread"] = "yes"
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
			WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"spread": "yes"}}}}
	}
	for i := 0; i < 2; i++ {
		p := mkPod("", tsc)
		n, err := s.schedule(p)
		if err != nil || n != "b" {
			t.Fatalf("spread pod %d went to %q (%v), want b", i, n, err)
		}
		s.cache.place(p, n, true)
	}
}

func boolp(b bool) *bool { return &b }

// Least allocated: with no owner to spread, a pod goes to the node with the most free
// CPU and memory.
func TestLeastAllocated(t *testing.T) {
	for _, busy := range []string{"a", "b"} {
		s := testScheduler()
		s.cache.setNode(mkNode("a", "8Gi", nil))
		s.cache.setNode(mkNode("b", "8Gi", nil))
		s.cache.place(mkPod("6Gi", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("3")
		}), busy, false)
		want := map[string]string{"a": "b", "b": "a"}[busy]
		for i := 0; i < 3; i++ {
			p := mkPod("512Mi", nil)
			n, err := s.schedule(p)
			if err != nil || n != want {
				t.Fatalf("with %s busy, pod %d went to %q (%v), want %s", busy, i, n, err, want)
			}
			s.cache.place(p, n, true)
		}
	}
}
