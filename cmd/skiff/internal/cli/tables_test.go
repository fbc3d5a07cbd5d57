package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var goldenNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(goldenNow.Add(-d)) }

func toUnstructured(t *testing.T, obj runtime.Object, gvk schema.GroupVersionKind) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -run %s -update rewrites it)\n--- got\n%s--- want\n%s", name, t.Name(), got, want)
	}
}

func goldenObjects(t *testing.T) map[string][]*unstructured.Unstructured {
	podGVK := corev1.SchemeGroupVersion.WithKind("Pod")
	pods := []*unstructured.Unstructured{
		toUnstructured(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-7d4b9c-abcde", Namespace: "demo", CreationTimestamp: ago(3 * time.Minute)},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.5", ContainerStatuses: []corev1.ContainerStatus{
				{Name: "web", Ready: true, RestartCount: 0, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			}},
		}, podGVK),
		toUnstructured(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-7d4b9c-fghij", Namespace: "demo", CreationTimestamp: ago(26 * time.Hour)},
			Spec:       corev1.PodSpec{NodeName: "n2", Containers: []corev1.Container{{Name: "web"}, {Name: "sidecar"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.2.7", ContainerStatuses: []corev1.ContainerStatus{
				{Name: "web", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
				{Name: "sidecar", RestartCount: 4, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
					LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(90 * time.Second)}}},
			}},
		}, podGVK),
		toUnstructured(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "pending", Namespace: "default", CreationTimestamp: ago(10 * time.Second)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodPending},
		}, podGVK),
	}
	svcGVK := corev1.SchemeGroupVersion.WithKind("Service")
	port := func(name string, p, np int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: p, NodePort: np, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}
	}
	svcs := []*unstructured.Unstructured{
		toUnstructured(t, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", CreationTimestamp: ago(5 * time.Minute)},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.12.34", Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{port("http", 80, 0), {Port: 53, Protocol: corev1.ProtocolUDP}}},
		}, svcGVK),
		toUnstructured(t, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web-nodeport", Namespace: "demo", CreationTimestamp: ago(5 * time.Minute)},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.40.2", Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{port("http", 80, 30080)}},
		}, svcGVK),
		toUnstructured(t, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web-headless", Namespace: "demo", CreationTimestamp: ago(5 * time.Minute)},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "None", Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{port("http", 80, 0)}},
		}, svcGVK),
		toUnstructured(t, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: "demo", CreationTimestamp: ago(48 * time.Hour)},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "docs.example.com"},
		}, svcGVK),
		toUnstructured(t, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "lb", Namespace: "demo", CreationTimestamp: ago(400 * 24 * time.Hour)},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.77", Ports: []corev1.ServicePort{port("", 443, 31443)}},
		}, svcGVK),
	}
	deps := []*unstructured.Unstructured{
		toUnstructured(t, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", CreationTimestamp: ago(5 * time.Minute)},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
		}, appsv1.SchemeGroupVersion.WithKind("Deployment")),
	}
	rss := []*unstructured.Unstructured{
		toUnstructured(t, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web-7d4b9c", Namespace: "demo", CreationTimestamp: ago(5 * time.Minute)},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "pod-template-hash": "7d4b9c"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}},
			Status: appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 2},
		}, appsv1.SchemeGroupVersion.WithKind("ReplicaSet")),
	}
	nodes := []*unstructured.Unstructured{
		toUnstructured(t, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", CreationTimestamp: ago(2 * time.Hour), Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}},
			Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.2"}},
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "skiff-v0.1.0", OSImage: "Debian GNU/Linux 12", KernelVersion: "6.1.0", ContainerRuntimeVersion: "containerd://1.6.20"},
			},
		}, corev1.SchemeGroupVersion.WithKind("Node")),
		toUnstructured(t, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n2", CreationTimestamp: ago(2 * time.Hour)},
			Spec:       corev1.NodeSpec{Unschedulable: true},
			Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}},
		}, corev1.SchemeGroupVersion.WithKind("Node")),
	}
	slices := []*unstructured.Unstructured{
		toUnstructured(t, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "web-x7k2p", Namespace: "demo", CreationTimestamp: ago(time.Minute)},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Port: ptr.To[int32](8080)}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5"}}, {Addresses: []string{"10.244.2.7"}},
				{Addresses: []string{"10.244.3.9"}}, {Addresses: []string{"10.244.3.10"}}},
		}, discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice")),
	}
	misc := map[string][]*unstructured.Unstructured{
		"namespaces": {toUnstructured(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo", CreationTimestamp: ago(time.Hour)}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}, corev1.SchemeGroupVersion.WithKind("Namespace"))},
		"configmaps": {toUnstructured(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web-config", Namespace: "demo", CreationTimestamp: ago(time.Hour)}, Data: map[string]string{"a": "1", "b": "2"}}, corev1.SchemeGroupVersion.WithKind("ConfigMap"))},
		"secrets":    {toUnstructured(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-secret", Namespace: "demo", CreationTimestamp: ago(time.Hour)}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte("x")}}, corev1.SchemeGroupVersion.WithKind("Secret"))},
		"events": {toUnstructured(t, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.1", Namespace: "demo", CreationTimestamp: ago(time.Hour)}, Type: "Normal", Reason: "ScalingReplicaSet",
			InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Name: "web"}, Message: "Scaled up replica set web-7d4b9c to 3", LastTimestamp: ago(2 * time.Minute)}, corev1.SchemeGroupVersion.WithKind("Event"))},
		"rc": {toUnstructured(t, &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: "demo", CreationTimestamp: ago(time.Hour)},
			Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](2), Selector: map[string]string{"app": "legacy"}}, Status: corev1.ReplicationControllerStatus{Replicas: 2, ReadyReplicas: 1}}, corev1.SchemeGroupVersion.WithKind("ReplicationController"))},
		"generic": {func() *unstructured.Unstructured {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"})
			u.SetName("w1")
			u.SetCreationTimestamp(ago(30 * time.Second))
			return u
		}()},
	}
	out := map[string][]*unstructured.Unstructured{"pods": pods, "services": svcs, "deployments": deps, "replicasets": rss, "nodes": nodes, "endpointslices": slices}
	for k, v := range misc {
		out[k] = v
	}
	return out
}

func TestTableGolden(t *testing.T) {
	for name, objs := range goldenObjects(t) {
		for _, mode := range []struct {
			suffix string
			p      TablePrinter
		}{{"", TablePrinter{}}, {"-wide", TablePrinter{Wide: true}}, {"-all-namespaces", TablePrinter{WithNamespace: true}}} {
			if mode.p.WithNamespace && objs[0].GetNamespace() == "" {
				continue // cluster-scoped kinds have no NAMESPACE column
			}
			t.Run(name+mode.suffix, func(t *testing.T) {
				p := mode.p
				p.Now = func() time.Time { return goldenNow }
				var buf bytes.Buffer
				if err := p.Print(&buf, objs[0].GroupVersionKind().GroupKind(), objs); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, name+mode.suffix+".txt", buf.Bytes())
			})
		}
	}
}

// Watch mode prints the header once and then only rows.
func TestTableHeaderOnce(t *testing.T) {
	objs := goldenObjects(t)["pods"]
	p := TablePrinter{Now: func() time.Time { return goldenNow }}
	var buf bytes.Buffer
	for _, o := range objs {
		if err := p.Print(&buf, o.GroupVersionKind().GroupKind(), []*unstructured.Unstructured{o}); err != nil {
			t.Fatal(err)
		}
	}
	if n := bytes.Count(buf.Bytes(), []byte("NAME")); n != 1 {
		t.Errorf("header printed %d times:\n%s", n, buf.String())
	}
}

func TestDescribeSecretHidesValues(t *testing.T) {
	objs := goldenObjects(t)["secrets"]
	var buf bytes.Buffer
	if err := DescribeObject(&buf, objs[0], nil, goldenNow); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "describe-secret.txt", buf.Bytes())
	if bytes.Contains(buf.Bytes(), []byte("eA==")) {
		t.Error("describe printed the secret's value")
	}
}

func TestDescribeGolden(t *testing.T) {
	objs := goldenObjects(t)
	ev := corev1.Event{Type: "Normal", Reason: "ScalingReplicaSet", Message: "Scaled up replica set web-7d4b9c to 3",
		LastTimestamp: ago(2 * time.Minute), Count: 2, Source: corev1.EventSource{Component: "deployment-controller"}}
	for name, o := range map[string]*unstructured.Unstructured{"deployment": objs["deployments"][0], "service": objs["services"][1], "pod": objs["pods"][1], "configmap": objs["configmaps"][0]} {
		var buf bytes.Buffer
		if err := DescribeObject(&buf, o, []corev1.Event{ev}, goldenNow); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "describe-"+name+".txt", buf.Bytes())
	}
}
