package datapath_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffnet/skiff/controlplane/testenv"
	"github.com/skiffnet/skiff/datapath"
	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestE2EReconcilerWithAPIServer runs the reconciler against the real API server (list+watch
// through client-go informers) and checks the maps with Verify, as `skiff datapath verify`
// does. With SKIFF_DP_CLI=path/to/skiff it also runs that command.
func TestE2EReconcilerWithAPIServer(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF, privtest.EtcdBinary)
	env := testenv.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.5.5", ClusterIPs: []string{"10.96.5.5"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := env.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	name, port, proto, ready := "http", int32(8080), corev1.ProtocolTCP, true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.5.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.244.5.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
		},
	}
	if _, err := env.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ns, err := netns.Create("skdpapi" + time.Now().Format("0405"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	pin := filepath.Join("/sys/fs/bpf", "skiff-test-api"+time.Now().Format("150405"))
	var dp *datapath.Datapath
	if err := ns.Do(func() error {
		var err error
		dp, err = datapath.New(datapath.Config{PinDir: pin, NodeIPs: []net.IP{net.ParseIP("10.0.9.1")}, NodeName: "n1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Remove() })
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- datapath.RunReconciler(rctx, env.Client, dp) }()
	t.Cleanup(func() { rcancel(); <-done })

	verify := func() []datapath.Drift {
		svcs, err := env.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sls, err := env.Client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var sp []*corev1.Service
		for i := range svcs.Items {
			sp = append(sp, &svcs.Items[i])
		}
		var slp []*discoveryv1.EndpointSlice
		for i := range sls.Items {
			slp = append(slp, &sls.Items[i])
		}
		drifts, err := datapath.Verify(dp.Maps(), datapath.Config{NodeIPs: []net.IP{net.ParseIP("10.0.9.1")}, NodeName: "n1"}, sp, slp)
		if err != nil {
			t.Fatal(err)
		}
		return drifts
	}
	deadline := time.Now().Add(20 * time.Second)
	var drifts []datapath.Drift
	for {
		drifts = verify()
		if len(drifts) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(drifts) != 0 {
		t.Fatalf("maps never matched the API: %v", drifts)
	}
	if cli := os.Getenv("SKIFF_DP_CLI"); cli != "" {
		out, err := exec.Command(cli, "datapath", "verify", "--kubeconfig", env.Kubeconfig, "--pin-dir", pin, "--node-name", "n1").CombinedOutput()
		t.Logf("skiff datapath verify: %v\n%s", err, out)
		if err != nil {
			t.Fatal(err)
		}
	}
	// Deleting the Service removes its frontends; the maps match the API again.
	if err := env.Client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		fs, err := dp.Maps().Frontends()
		if err != nil {
			t.Fatal(err)
		}
		gone := true
		for _, f := range fs {
			if strings.HasPrefix(f.Address, "10.96.5.5:") {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted Service still in the maps: %v", fs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := verify(); len(d) != 0 {
		t.Fatalf("after delete: %v", d)
	}
}
