package localcluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
)

// e2eCluster is a `skiff up` process and the means to drive it.
type e2eCluster struct {
	t       testing.TB
	bin     string
	dataDir string
	name    string
	subnet  string
	root    string // the repo
	imgDir  string // the test images, built by startCluster
	up      *exec.Cmd
	upDone  chan error
	out     *syncBuffer
	client  kubernetes.Interface
	kcfg    string
	ready   time.Duration // what `skiff up` printed as its time to ready

	mu       sync.Mutex
	before   hostSnapshot    // the host before up, for the leftover check
	podUIDs  map[string]bool // every pod seen, so their network namespaces can be checked
	stopSeen chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// skiff runs the CLI against the cluster and returns its combined output.
func (c *e2eCluster) skiff(args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "SKIFF_KUBECONFIG="+c.kcfg)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *e2eCluster) mustSkiff(args ...string) string {
	c.t.Helper()
	out, err := c.skiff(args...)
	if err != nil {
		c.t.Fatalf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func (c *e2eCluster) eventually(what string, within time.Duration, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(250 * time.Millisecond)
	}
	c.t.Fatalf("%s: not within %s (last: %s)\n--- skiff up output:\n%s", what, within, last, c.out.String())
}

func (c *e2eCluster) readyPods(selector string) []corev1.Pod {
	pods, err := c.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil
	}
	var ready []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready = append(ready, p)
			}
		}
	}
	return ready
}

func (c *e2eCluster) waitReady(selector string, n int, within time.Duration) []corev1.Pod {
	c.t.Helper()
	var pods []corev1.Pod
	c.eventually(fmt.Sprintf("%d ready pods for %s", n, selector), within, func() (bool, string) {
		pods = c.readyPods(selector)
		all, _ := c.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		return len(pods) == n && all != nil && len(all.Items) == n, fmt.Sprintf("%d ready", len(pods))
	})
	return pods
}

// nodeIP is the address of node i.
func (c *e2eCluster) nodeIP(i int) string {
	return (&Network{Subnet: c.ipnet()}).NodeIP(i).String()
}

func (c *e2eCluster) ipnet() *net.IPNet {
	_, n, err := net.ParseCIDR(c.subnet)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (c *e2eCluster) down() (string, error) {
	out, err := exec.Command(c.bin, "down", "--name", c.name, "--data-dir", c.dataDir, "--subnet", c.subnet,
		"--containerd-socket", privtest.ContainerdSocket()).CombinedOutput()
	return string(out), err
}

// startCluster builds skiff and the test images, runs `skiff up --nodes 3` in the foreground
// of its own process, waits for it to say ready, and imports the images.
func startCluster(t testing.TB, name, subnet string) *e2eCluster {
	root := repoRoot(t)
	tmp := t.TempDir()
	c := &e2eCluster{t: t, bin: filepath.Join(tmp, "skiff"), dataDir: filepath.Join(tmp, "data"), name: name, subnet: subnet,
		root: root, imgDir: filepath.Join(tmp, "images"), out: &syncBuffer{},
		podUIDs: map[string]bool{}, stopSeen: make(chan struct{})}
	build := exec.Command("go", "build", "-o", c.bin, "./cmd/skiff")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build skiff: %v\n%s", err, out)
	}
	imgBuild := exec.Command(c.bin, "image", "build", "--out", c.imgDir)
	imgBuild.Dir = root
	if out, err := imgBuild.CombinedOutput(); err != nil {
		t.Fatalf("build images: %v\n%s", err, out)
	}

	c.before = hostState()
	c.up = exec.Command(c.bin, "up", "--nodes", "3", "--name", c.name, "--data-dir", c.dataDir, "--subnet", c.subnet,
		"--containerd-socket", privtest.ContainerdSocket())
	c.up.Stdout, c.up.Stderr = c.out, c.out
	if err := c.up.Start(); err != nil {
		t.Fatal(err)
	}
	c.upDone = make(chan error, 1)
	go func() { c.upDone <- c.up.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		if c.up.ProcessState == nil {
			c.up.Process.Signal(syscall.SIGINT)
			select {
			case <-c.upDone:
			case <-time.After(60 * time.Second):
				c.up.Process.Kill()
			}
		}
		c.down()
	})
	c.kcfg = filepath.Join(c.dataDir, "server", "kubeconfig")
	readyRE := regexp.MustCompile(`cluster ready in ([0-9.]+)s`)
	c.eventually("cluster ready", 3*time.Minute, func() (bool, string) {
		select {
		case err := <-c.upDone:
			t.Fatalf("skiff up exited: %v\n%s", err, c.out.String())
		default:
		}
		m := readyRE.FindStringSubmatch(c.out.String())
		if m == nil {
			return false, ""
		}
		secs, _ := strconv.ParseFloat(m[1], 64)
		c.ready = time.Duration(secs * float64(time.Second))
		return true, ""
	})
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c.client = kubernetes.NewForConfigOrDie(cfg)
	go c.track()
	t.Cleanup(func() { close(c.stopSeen) })
	for _, f := range []string{"echo.tar", "dnsclient.tar"} {
		c.mustSkiff("image", "import", filepath.Join(c.imgDir, f))
	}
	return c
}

// dumpLogs puts the end of every daemon's log into the test output: the data dir goes with
// the test.
func (c *e2eCluster) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(c.dataDir, "run", "*.log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		lines = lines[max(0, len(lines)-60):]
		c.t.Logf("--- last %d lines of %s:\n%s", len(lines), filepath.Base(f), strings.Join(lines, "\n"))
	}
}

// track records every pod of the cluster while it runs, for the leftover check.
func (c *e2eCluster) track() {
	for {
		if pods, err := c.client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{}); err == nil {
			c.mu.Lock()
			for _, p := range pods.Items {
				c.podUIDs[string(p.UID)] = true
			}
			c.mu.Unlock()
		}
		select {
		case <-c.stopSeen:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// backendsSeen asks the service through the client pod until it has seen want distinct pods.
func (c *e2eCluster) backendsSeen(url string, want map[string]bool) {
	c.t.Helper()
	seen := map[string]bool{}
	re := regexp.MustCompile(`pod=(\S+)`)
	c.eventually("every backend answers through "+url, 60*time.Second, func() (bool, string) {
		out, _ := c.skiff("exec", "client", "--", "/echo", "get", url, "30")
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			seen[m[1]] = true
		}
		for p := range want {
			if !seen[p] {
				return false, fmt.Sprintf("seen %v, output %q", seen, out)
			}
		}
		return true, ""
	})
}

func TestE2ELocalCluster(t *testing.T) {
	privtest.Require(t, privtest.Root, privtest.BPF, privtest.Containerd, privtest.Cgroup2)

	// 1. skiff up --nodes 3, then the images and the workload.
	c := startCluster(t, "e2e", "172.30.9.0/24")
	t.Logf("skiff up: ready in %s", c.ready)
	c.mustSkiff("apply", "-f", filepath.Join(c.root, "testdata", "e2e", "web.yaml"))
	pods := c.waitReady("app=web", 3, 2*time.Minute)
	nodes := map[string]bool{}
	want := map[string]bool{}
	for _, p := range pods {
		nodes[p.Spec.NodeName] = true
		want[p.Name] = true
	}
	if len(nodes) != 3 {
		t.Errorf("3 replicas landed on %d nodes, want one per node: %v", len(nodes), nodes)
	}
	c.eventually("client pod ready", time.Minute, func() (bool, string) {
		p, err := c.client.CoreV1().Pods("default").Get(context.Background(), "client", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, fmt.Sprint(err)
	})

	// 3. DNS, then every backend through the ClusterIP, across nodes over the overlay.
	out := c.mustSkiff("exec", "client", "--", "/echo", "lookup", "web.default.svc.cluster.local")
	svc, err := c.client.CoreV1().Services("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, svc.Spec.ClusterIP) {
		t.Fatalf("DNS answered %q, want the ClusterIP %s", out, svc.Spec.ClusterIP)
	}
	c.backendsSeen("http://web.default.svc.cluster.local/", want)

	// 4. The NodePort from the host on every node's IP.
	nw := &Network{Cluster: c.name, Subnet: c.ipnet()}
	for i := 1; i <= 3; i++ {
		url := fmt.Sprintf("http://%s:30080/", c.nodeIP(i))
		c.eventually("NodePort on node "+nw.NodeName(i), 30*time.Second, func() (bool, string) {
			body, err := get(url)
			return err == nil && strings.Contains(body, "pod="), fmt.Sprint(body, err)
		})
	}

	// 5. Scale to 6 and back to 2.
	c.mustSkiff("scale", "deploy/web", "--replicas", "6")
	c.waitReady("app=web", 6, 2*time.Minute)
	c.mustSkiff("scale", "deploy/web", "--replicas", "2")
	c.waitReady("app=web", 2, 2*time.Minute)
	c.mustSkiff("scale", "deploy/web", "--replicas", "3")
	c.waitReady("app=web", 3, 2*time.Minute)

	// 6. A rolling update under continuous load through the NodePort: no request may fail.
	var sent, failed atomic.Int64
	var lastErr atomic.Value
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			sent.Add(1)
			if _, err := get("http://" + c.nodeIP(1) + ":30080/"); err != nil {
				failed.Add(1)
				lastErr.Store(err.Error())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	c.mustSkiff("rollout", "restart", "deploy/web")
	c.mustSkiff("rollout", "status", "deploy/web", "--timeout", "3m")
	close(stopLoad)
	<-loadDone
	if failed.Load() > 0 {
		t.Errorf("rolling update: %d of %d requests failed (last: %v)", failed.Load(), sent.Load(), lastErr.Load())
	}
	t.Logf("rolling update: %d requests, %d failed", sent.Load(), failed.Load())

	// 7. Restart the control plane: no pod restarts.
	restarts := podRestarts(t, c.client)
	stopPidFile(filepath.Join(c.dataDir, "run", "server.pid"), 10*time.Second)
	c.eventually("control plane back", time.Minute, func() (bool, string) {
		_, err := c.client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	after := podRestarts(t, c.client)
	for uid, n := range restarts {
		if m, ok := after[uid]; !ok || m != n {
			t.Errorf("pod %s: restarts %d -> %d (present %v) after a control plane restart", uid, n, m, ok)
		}
	}

	// 8. Take node 3 away: its pods come back elsewhere within 90 s and the service answers.
	stopPidFile(filepath.Join(c.dataDir, "run", "agent-3.pid"), 10*time.Second)
	removeNode(nw, 3)
	gone := nw.NodeName(3)
	c.eventually("pods rescheduled off "+gone, 90*time.Second, func() (bool, string) {
		ready := c.readyPods("app=web")
		for _, p := range ready {
			if p.Spec.NodeName == gone {
				return false, "a ready pod is still on " + gone
			}
		}
		return len(ready) == 3, fmt.Sprintf("%d ready", len(ready))
	})
	c.eventually("service answers after node loss", 30*time.Second, func() (bool, string) {
		body, err := get("http://" + c.nodeIP(1) + ":30080/")
		return err == nil && strings.Contains(body, "pod="), fmt.Sprint(body, err)
	})

	// 9. Ctrl-C, then skiff down leaves nothing behind.
	c.up.Process.Signal(syscall.SIGINT)
	select {
	case err := <-c.upDone:
		if err != nil {
			t.Errorf("skiff up after Ctrl-C: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("skiff up did not stop within 90s of Ctrl-C")
	}
	if out, err := c.down(); err != nil {
		t.Fatalf("skiff down: %v\n%s", err, out)
	}
	for _, l := range c.leftovers() {
		t.Errorf("skiff down left behind: %s", l)
	}
}

func podRestarts(t *testing.T, client kubernetes.Interface) map[string]int32 {
	t.Helper()
	pods, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, p := range pods.Items {
		var n int32
		for _, s := range p.Status.ContainerStatuses {
			n += s.RestartCount
		}
		out[string(p.UID)] = n
	}
	return out
}

func get(url string) (string, error) {
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(bufio.NewReader(resp.Body))
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return string(b), err
}
