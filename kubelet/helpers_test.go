package kubelet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"crypto/tls"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	"github.com/skiffnet/skiff/kubelet/images"
	"github.com/skiffnet/skiff/kubelet/podnet"
	"github.com/skiffnet/skiff/kubelet/runtime"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

var (
	imagesOnce sync.Once
	imagesDir  string
	imagesErr  error
)

// testImages builds the test images once per test binary.
func testImages(t testing.TB) string {
	imagesOnce.Do(func() {
		imagesDir, imagesErr = os.MkdirTemp("", "skiff-kubelet-images-")
		if imagesErr == nil {
			_, imagesErr = images.Build(context.Background(), imagesDir)
		}
	})
	if imagesErr != nil {
		t.Fatalf("build test images: %v", imagesErr)
	}
	return imagesDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imagesDir != "" {
		os.RemoveAll(imagesDir)
	}
	os.Exit(code)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// testNode is an agent under test in its own netns and containerd namespace.
type testNode struct {
	Name   string
	NS     *netns.NS
	Agent  *Agent
	RT     *runtime.Runtime
	cancel context.CancelFunc
	done   chan error
	cfg    Config
}

// nodeNetNS makes the node's netns with a dummy "uplink" holding the node IP.
func nodeNetNS(t testing.TB, ip string) *netns.NS {
	t.Helper()
	name := "skkl" + randHex(6)
	ns, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink0"}, PeerName: "uplink1"}
	if err := h.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr(ip + "/24")
	if err := h.AddrAdd(d, addr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(d); err != nil {
		t.Fatal(err)
	}
	if p, err := h.LinkByName("uplink1"); err == nil {
		h.LinkSetUp(p)
	}
	return ns
}

// noPodCIDR as Config.PodCIDR makes startNode run an agent without one of its own.
const noPodCIDR = "none"

// startNode runs an agent with cfg (NodeName, Client or Server/Token set by the caller).
func startNode(t testing.TB, cfg Config) *testNode {
	t.Helper()
	privtest.Require(t, privtest.Root, privtest.Containerd)
	if cfg.NodeName == "" {
		cfg.NodeName = "kt-" + randHex(6)
	}
	if cfg.NetNS == "" {
		ns := nodeNetNS(t, "10.123.0.2")
		cfg.NetNS = ns.Name
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.ContainerdSocket == "" {
		cfg.ContainerdSocket = privtest.ContainerdSocket()
	}
	switch cfg.PodCIDR {
	case "":
		cfg.PodCIDR = "10.244.77.0/24"
	case noPodCIDR:
		cfg.PodCIDR = "" // wait for Node.spec.podCIDR
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = 2 * time.Second
	}
	ctx := context.Background()
	rt, err := runtime.New(ctx, cfg.ContainerdSocket, runtime.NamespaceFor(cfg.NodeName))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{images.Echo.File, images.DNSClient.File} {
		fh, err := os.Open(testImages(t) + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Import(ctx, fh); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	n := &testNode{Name: cfg.NodeName, RT: rt, cfg: cfg}
	n.NS, _ = netns.Open(cfg.NetNS)
	n.start(t)
	t.Cleanup(func() {
		owners := map[string]string{}
		if n.Agent != nil && n.Agent.net != nil {
			owners = n.Agent.net.Owners()
		}
		n.stop()
		cleanupRuntime(rt)
		for uid := range owners {
			netns.Delete(podnet.NetNSName(uid))
		}
		rt.Close()
	})
	return n
}

func (n *testNode) start(t testing.TB) {
	t.Helper()
	a, err := New(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.Agent, n.cancel, n.done = a, cancel, make(chan error, 1)
	go func() { n.done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-n.done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("agent not ready after 60s")
	}
}

// stop stops the agent (containers keep running).
func (n *testNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	<-n.done
	n.cancel = nil
}

// cleanupRuntime removes every container, image and the namespace of a test node.
func cleanupRuntime(rt *runtime.Runtime) {
	ctx := context.Background()
	cs, _ := rt.List(ctx)
	for _, c := range cs {
		rt.Stop(ctx, c.ID, 0)
		rt.Remove(ctx, c.ID)
		if ns := c.Labels[runtime.LabelPodUID]; ns != "" {
			netns.Delete(podnet.NetNSName(ns))
		}
	}
	imgs, _ := rt.Images(ctx)
	for _, im := range imgs {
		rt.RemoveImage(ctx, im.Name)
	}
	if err := rt.Client().NamespaceService().Delete(ctx, rt.Namespace()); err != nil {
		fmt.Fprintf(os.Stderr, "cleanup: delete containerd namespace %s: %v\n", rt.Namespace(), err)
	}
	rt.RemoveNamespaceCgroups()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", d, what, last)
}

func getPod(c kubernetes.Interface, ns, name string) (*corev1.Pod, error) {
	return c.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
}

// waitPod waits until cond holds for the pod.
func waitPod(t testing.TB, c kubernetes.Interface, ns, name string, d time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	waitFor(t, d, fmt.Sprintf("pod %s/%s: %s", ns, name, what), func() (bool, string) {
		var err error
		p, err = getPod(c, ns, name)
		if err != nil {
			return false, err.Error()
		}
		return cond(p), fmt.Sprintf("phase=%s conditions=%v containers=%s", p.Status.Phase, p.Status.Conditions, describeStatuses(p.Status.ContainerStatuses))
	})
	return p
}

func describeStatuses(css []corev1.ContainerStatus) string {
	var b strings.Builder
	for _, cs := range css {
		fmt.Fprintf(&b, "[%s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
		switch {
		case cs.State.Running != nil:
			b.WriteString(" running")
		case cs.State.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s: %s", cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			fmt.Fprintf(&b, " terminated %d %s", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason)
		}
		b.WriteString("]")
	}
	return b.String()
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// httpGet fetches url from inside the node's netns.
func (n *testNode) httpGet(url string) (string, error) {
	tr := &http.Transport{DialContext: n.dialCtx, DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}

// waitServing waits until the echo server of the pod at ip answers HTTP.
func (n *testNode) waitServing(t testing.TB, ip string) {
	t.Helper()
	waitFor(t, 20*time.Second, "HTTP from the pod at "+ip, func() (bool, string) {
		_, err := n.httpGet("http://" + ip + ":8080/")
		return err == nil, errString(err)
	})
}

// dialNode dials from inside the node's netns.
func (n *testNode) dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return n.dialCtx(ctx, network, addr)
}

// dialCtx dials from inside the node's netns (with the test's own handle: the agent may be down).
func (n *testNode) dialCtx(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.NS.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

func echoPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: newUID()},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name:  "echo",
				Image: images.Echo.Ref,
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				},
				ImagePullPolicy: corev1.PullIfNotPresent,
			}},
		},
	}
}

func newUID() types.UID {
	return types.UID(fmt.Sprintf("%s-%s-%s-%s-%s", randHex(8), randHex(4), randHex(4), randHex(4), randHex(12)))
}

// exec runs cmd in a pod's container through containerd and returns its output and exit code.
func (n *testNode) exec(t testing.TB, p *corev1.Pod, container string, cmd ...string) (string, int) {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, err := n.RT.Exec(ctx, containerID(p.UID, container), cmd, nil, &out, &out)
	if err != nil {
		t.Fatalf("exec %v in %s/%s: %v", cmd, p.Name, container, err)
	}
	return out.String(), code
}

func ctrStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	for i := range p.Status.InitContainerStatuses {
		if p.Status.InitContainerStatuses[i].Name == name {
			return &p.Status.InitContainerStatuses[i]
		}
	}
	return nil
}

func running(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && podReady(p) }

func nsCtx(n *testNode) context.Context {
	return namespaces.WithNamespace(context.Background(), n.RT.Namespace())
}

func emptyIndex() v1.ImageIndex { return empty.Index }

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }
