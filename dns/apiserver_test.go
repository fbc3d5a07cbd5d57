package dns

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffnet/skiff/controlplane/server"
	"github.com/skiffnet/skiff/controlplane/testenv"
)

// loadFixture creates the fixture through the real API. It returns the
// Services the API refused (for example dual-stack on a single-stack
// cluster), whose cases are then skipped.
func loadFixture(t testing.TB, c kubernetes.Interface) map[string]bool {
	t.Helper()
	ctx := context.Background()
	svcs, slices, pods := fixture()
	refused := map[string]bool{}
	for _, s := range svcs {
		if _, err := c.CoreV1().Services(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{}); err == nil {
			continue // the server's own kubernetes Service
		}
		ensureNamespace(t, c, s.Namespace)
		got, err := c.CoreV1().Services(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Logf("API refused Service %s/%s (its cases are skipped): %v", s.Namespace, s.Name, err)
			refused[s.Name] = true
			continue
		}
		if len(got.Spec.ClusterIPs) < len(s.Spec.ClusterIPs) {
			t.Logf("API kept ClusterIPs %v of %v for %s (single-stack): its IPv6 cases are skipped", got.Spec.ClusterIPs, s.Spec.ClusterIPs, s.Name)
			refused[s.Name+"/AAAA"] = true
		}
	}
	for _, s := range slices {
		if _, err := c.DiscoveryV1().EndpointSlices(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create EndpointSlice %s: %v", s.Name, err)
		}
	}
	for _, p := range pods {
		st := p.Status
		created, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create Pod %s: %v", p.Name, err)
		}
		created.Status = st
		if _, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update Pod %s status: %v", p.Name, err)
		}
	}
	return refused
}

func ensureNamespace(t testing.TB, c kubernetes.Interface, ns string) {
	t.Helper()
	_, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
}

// TestSpecAPIServer runs the specification table against informers fed by
// the real skiff API server.
func TestSpecAPIServer(t *testing.T) {
	env := testenv.Start(t)
	refused := loadFixture(t, env.Client)
	up := startUpstream(t)
	s := startSyncedServer(t, Config{Client: env.Client, Upstreams: []string{up.addr}})
	var cases []dnsCase
	for _, c := range specCases {
		skip := false
		for name := range refused {
			if svc, ok := strings.CutSuffix(name, "/AAAA"); ok {
				skip = skip || (strings.HasPrefix(c.qname, svc+".") && c.qtype == mdns.TypeAAAA) || strings.HasSuffix(c.qname, ".ip6.arpa.")
				continue
			}
			skip = skip || strings.Contains(strings.ToLower(c.qname), name+".")
		}
		if !skip {
			cases = append(cases, c)
		}
	}
	runCases(t, s.Addrs()[0], cases)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestSurvivesAPIServerRestart stops the real API server, checks the DNS
// server keeps answering from its last state, starts it again on the same
// data dir and address, and checks a change made afterwards shows up.
func TestSurvivesAPIServerRestart(t *testing.T) {
	dir := t.TempDir()
	listen := freePort(t)
	env := testenv.StartWith(t, server.Config{DataDir: dir, Listen: listen}, nil)
	loadFixture(t, env.Client)
	s := startSyncedServer(t, Config{Client: env.Client})
	addr := s.Addrs()[0]
	name := "svc1.testns.svc.cluster.local."
	if r := query(t, addr, "udp", name, mdns.TypeA, 0); len(r.Answer) != 1 {
		t.Fatalf("before restart: %v", r)
	}

	env.Stop()
	for range 10 {
		if r := query(t, addr, "udp", name, mdns.TypeA, 0); len(r.Answer) != 1 {
			t.Fatalf("API server down: %s with %d answers, want the last known record", mdns.RcodeToString[r.Rcode], len(r.Answer))
		}
		time.Sleep(20 * time.Millisecond) // spacing queries over the outage, not waiting for a condition
	}

	env2 := testenv.StartWith(t, server.Config{DataDir: dir, Listen: listen}, nil)
	if err := env2.Client.CoreV1().Services("testns").Delete(context.Background(), "svc1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the deletion after the restart", func() bool {
		return query(t, addr, "udp", name, mdns.TypeA, 0).Rcode == mdns.RcodeNameError
	})
}
