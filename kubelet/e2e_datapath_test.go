package kubelet

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiffnet/skiff/datapath"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// With the eBPF datapath loaded by the agent, a pod reaches another through a ClusterIP.
func TestE2EDatapathClusterIP(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF, privtest.Containerd)
	cl := newCluster(t)
	pin := "/sys/fs/bpf/skiff-test-" + randHex(8)
	t.Cleanup(func() { os.RemoveAll(pin) })
	n := cl.node(t, Config{DatapathConfig: &datapath.Config{PinDir: pin, MaxServices: 1024, MaxBackends: 1024, MaxConntrack: 4096}})
	ctx := context.Background()
	backend := echoPod("default", "backend", n.Name)
	backend.Labels = map[string]string{"app": "backend"}
	client := echoPod("default", "client", n.Name)
	client.Spec.Containers[0].Args = []string{"sleep", "3600"}
	cl.createPod(t, backend)
	cl.createPod(t, client)
	b := waitPod(t, cl.Client, "default", "backend", podTimeout, "Running", running)
	c := waitPod(t, cl.Client, "default", "client", podTimeout, "Running", running)
	svc, err := cl.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "backend"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No endpointslice controller runs in testenv: publish the slice by hand.
	if _, err := cl.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{b.Status.PodIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			NodeName: ptr.To(n.Name), TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "backend"}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var out string
	waitFor(t, 30*time.Second, "ClusterIP answers from the client pod", func() (bool, string) {
		var code int
		out, code = n.exec(t, c, "echo", "/echo", "get", "http://"+svc.Spec.ClusterIP+"/")
		return code == 0 && strings.Contains(out, "pod=backend"), out
	})
}
