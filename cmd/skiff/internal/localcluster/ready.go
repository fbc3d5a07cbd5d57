package localcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// pollEvery is how often up looks at the API while it waits: a local API server answers a
// list in a millisecond or two, and every 50 ms saved is seen by whoever waits for `up`.
const pollEvery = 50 * time.Millisecond

// waitForServer waits until the API server answers /readyz with the admin kubeconfig.
func waitForServer(ctx context.Context, kubeconfig string, server *proc) (kubernetes.Interface, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(kubeconfig); err == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err == nil {
				cfg.Timeout = 2 * time.Second
				cfg.QPS, cfg.Burst = 100, 200 // the polls below must not be throttled
				client, err := kubernetes.NewForConfig(cfg)
				if err == nil {
					if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err == nil {
						return client, nil
					}
				}
			}
		}
		select {
		case <-server.exited:
			return nil, fmt.Errorf("the API server exited (%v): see %s", server.exitErr, server.logFile())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the API server was not ready within 60s: see %s", server.logFile())
		}
	}
}

// dnsSlices returns the resourceVersions of the kube-dns EndpointSlices by name: what a
// previous run may have left, so that only slices written by this run's agents count.
func dnsSlices(ctx context.Context, client kubernetes.Interface) map[string]string {
	out := map[string]string{}
	list, err := client.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kube-dns"})
	if err != nil {
		return out
	}
	for _, s := range list.Items {
		out[s.Name] = s.ResourceVersion
	}
	return out
}

// nodeProgress is how far the nodes of this run have come.
type nodeProgress struct{ registered, podCIDR, ready, dns int }

func (p nodeProgress) String() string {
	return fmt.Sprintf("%d registered, %d with a pod CIDR, %d Ready, %d serving DNS", p.registered, p.podCIDR, p.ready, p.dns)
}

// waitForNodes waits until every node is Ready with a heartbeat from this run (a Node kept in
// the data dir still says Ready from the last one) and serves the cluster DNS, its kube-dns
// EndpointSlice written by this run. It fails early when an agent exits.
func waitForNodes(ctx context.Context, client kubernetes.Interface, nw *Network, n int, since time.Time, oldSlices map[string]string, agents []*proc, out io.Writer) error {
	deadline := time.Now().Add(120 * time.Second)
	// Node status times have whole seconds.
	fresh := metav1.NewTime(since.Truncate(time.Second))
	var last nodeProgress
	for first := true; ; first = false {
		var p nodeProgress
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		slices, err2 := client.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kube-dns"})
		if err == nil && err2 == nil {
			mine := map[string]bool{}
			for i := 1; i <= n; i++ {
				mine[nw.NodeName(i)] = true
			}
			for _, node := range nodes.Items {
				if !mine[node.Name] {
					continue
				}
				for _, c := range node.Status.Conditions {
					if c.Type != corev1.NodeReady || c.LastHeartbeatTime.Before(&fresh) {
						continue
					}
					p.registered++
					if c.Status == corev1.ConditionTrue {
						p.ready++
					}
				}
				if node.Spec.PodCIDR != "" {
					p.podCIDR++
				}
			}
			for _, s := range slices.Items {
				// The agent names its slice kube-dns-<node> and removes it when it stops.
				node, ok := strings.CutPrefix(s.Name, "kube-dns-")
				if ok && mine[node] && oldSlices[s.Name] != s.ResourceVersion {
					p.dns++
				}
			}
		}
		if first || p != last {
			fmt.Fprintf(out, "%5.1fs nodes: %s\n", time.Since(since).Seconds(), p)
			last = p
		}
		if p.ready >= n && p.dns >= n {
			return nil
		}
		for _, a := range agents {
			select {
			case <-a.exited:
				return fmt.Errorf("%s exited (%v) before its node was ready: see %s", a.name, a.exitErr, a.logFile())
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %s of %d nodes within 120s: see the agent logs in %s", p, n, filepath.Dir(agents[0].logFile()))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}
