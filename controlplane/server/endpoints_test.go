package server_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffnet/skiff/controlplane/server"
	"github.com/skiffnet/skiff/controlplane/testenv"
)

// kubernetesEndpoints lists "ip:port" of the kubernetes Service's Endpoints and of its
// EndpointSlices.
func kubernetesEndpoints(t *testing.T, c kubernetes.Interface) (eps, slices string, err error) {
	ctx := context.Background()
	ep, err := c.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	var a, b []string
	for _, ss := range ep.Subsets {
		for _, ad := range ss.Addresses {
			for _, p := range ss.Ports {
				a = append(a, fmt.Sprintf("%s:%d", ad.IP, p.Port))
			}
		}
	}
	sl, err := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
	if err != nil {
		return "", "", err
	}
	for _, s := range sl.Items {
		for _, e := range s.Endpoints {
			for _, p := range s.Ports {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					b = append(b, fmt.Sprintf("%s:%d", e.Addresses[0], *p.Port))
				}
			}
		}
	}
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, ","), strings.Join(b, ","), nil
}

func waitEndpoints(t *testing.T, c kubernetes.Interface, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		eps, slices, err := kubernetesEndpoints(t, c)
		if err == nil && eps == want && slices == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubernetes endpoints %q, slices %q (err %v), want %q", eps, slices, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The kubernetes Service points at every live API server: a second server sharing the
// etcd joins the endpoints, one that stops cleanly leaves at once, and one that dies (its
// lease no longer renewed) is dropped after the lease duration.
func TestKubernetesEndpointsListEveryServer(t *testing.T) {
	defer server.SetAPIServerLeaseTiming(2*time.Second, 200*time.Millisecond)()
	a := testenv.Start(t)
	ctx := context.Background()
	self := func(e *testenv.Env) string { return fmt.Sprintf("127.0.0.1:%d", e.Server.Port()) }
	waitEndpoints(t, a.Client, self(a))

	b := testenv.StartPeer(t, a)
	both := []string{self(a), self(b)}
	sort.Strings(both)
	waitEndpoints(t, a.Client, strings.Join(both, ","))
	waitEndpoints(t, b.Client, strings.Join(both, ","))

	b.Stop()
	waitEndpoints(t, a.Client, self(a))

	// A server that died without cleaning up: a lease nobody renews.
	holder, secs, now := "192.0.2.7:6443", int32(2), metav1.NewMicroTime(time.Now())
	dead := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "skiff-apiserver-dead", Namespace: "kube-system",
		Labels:      map[string]string{"skiff.io/apiserver-endpoint": "true"},
		Annotations: map[string]string{"skiff.io/address": "192.0.2.7", "skiff.io/port": fmt.Sprint(a.Server.Port())}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now}}
	if _, err := a.Client.CoordinationV1().Leases("kube-system").Create(ctx, dead, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEndpoints(t, a.Client, fmt.Sprintf("127.0.0.1:%d,192.0.2.7:%d", a.Server.Port(), a.Server.Port()))
	waitEndpoints(t, a.Client, self(a))
	if _, err := a.Client.CoordinationV1().Leases("kube-system").Get(ctx, "skiff-apiserver-dead", metav1.GetOptions{}); err == nil {
		t.Error("the expired lease of the dead server was not deleted")
	}
}
