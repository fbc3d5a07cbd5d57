package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffnet/skiff/controlplane/server"
	"github.com/skiffnet/skiff/controlplane/testenv"
	"github.com/skiffnet/skiff/datapath/netns/privtest"
	"sigs.k8s.io/yaml"
)

// examplesDir is testdata/examples at the repository root.
var examplesDir = filepath.Join("..", "..", "..", "..", "testdata", "examples")

// e2eCluster is a `skiff server` process and the CLI binary that talks to it.
type e2eCluster struct {
	bin        string
	kubeconfig string
	dataDir    string
}

// startServer builds skiff, runs `skiff server` on a free loopback port and waits until the CLI
// can reach it. Without a working server it skips, or fails under SKIFF_E2E=1.
func startServer(t *testing.T) *e2eCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs skiff server")
	}
	skip := func(format string, args ...any) {
		t.Helper()
		if privtest.E2E() {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "skiff")
	build := exec.Command("go", "build", "-o", bin, "github.com/skiffnet/skiff/cmd/skiff")
	if out, err := build.CombinedOutput(); err != nil {
		skip("build skiff: %v\n%s", err, out)
	}
	c := &e2eCluster{bin: bin, dataDir: filepath.Join(tmp, "data")}
	if out, err := exec.Command(bin, "server", "--help").CombinedOutput(); err != nil {
		// No `skiff server` command in this build: run the same server in-process instead.
		t.Logf("skiff server unavailable (%v: %s): using controlplane/testenv", err, bytes.TrimSpace(out))
		env := testenv.StartWith(t, server.Config{DataDir: c.dataDir}, nil)
		c.kubeconfig = env.Kubeconfig
		if _, errOut, code := c.try("version"); code != 0 {
			t.Fatalf("skiff version against testenv: exit %d: %s", code, errOut)
		}
		return c
	}
	port := freePort(t)
	logf, err := os.Create(filepath.Join(tmp, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "server", "--data-dir", c.dataDir, "--listen", "127.0.0.1:"+port)
	srv.Stdout, srv.Stderr = logf, logf
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server log (tail):\n%s", tail(string(b), 4000))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			exited <- err
			t.Fatalf("skiff server exited: %v\n%s", err, tail(string(b), 4000))
		default:
		}
		if c.kubeconfig == "" {
			c.kubeconfig = findKubeconfig(c.dataDir)
		}
		if c.kubeconfig != "" {
			if _, _, code := c.try("version"); code == 0 {
				t.Logf("skiff server pid %d on 127.0.0.1:%s, kubeconfig %s", srv.Process.Pid, port, c.kubeconfig)
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("skiff server not ready after 90s (kubeconfig %q)", c.kubeconfig)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// findKubeconfig looks for the admin client config the server writes into its data dir.
func findKubeconfig(dir string) string {
	var found string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return nil
		}
		if strings.Contains(filepath.Base(p), "kubeconfig") {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte("clusters:")) {
				found = p
			}
		}
		return nil
	})
	return found
}

// try runs the CLI and returns stdout, stderr and the exit code.
func (c *e2eCluster) try(args ...string) (string, string, int) {
	return c.tryIn("", args...)
}

func (c *e2eCluster) tryIn(stdin string, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(c.dataDir))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return out.String(), errOut.String(), code
}

// ok runs the CLI and fails the test unless it exits 0.
func (c *e2eCluster) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := c.try(args...)
	if code != 0 {
		t.Fatalf("skiff %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs the CLI, expects a non-zero exit and a stderr matching re, and returns stderr.
func (c *e2eCluster) fails(t *testing.T, re string, args ...string) string {
	t.Helper()
	out, errOut, code := c.try(args...)
	if code == 0 {
		t.Fatalf("skiff %s: exit 0, want failure\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out, errOut)
	}
	if !regexp.MustCompile(re).MatchString(errOut) {
		t.Errorf("skiff %s: stderr %q does not match %q", strings.Join(args, " "), errOut, re)
	}
	return errOut
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func wantLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	if g := strings.Join(lines(got), "\n"); g != strings.Join(want, "\n") {
		t.Errorf("%s:\n got:\n%s\nwant:\n%s", what, g, strings.Join(want, "\n"))
	}
}

var exampleObjects = []string{
	"namespace/demo",
	"deployment.apps/web",
	"service/web",
	"service/web-nodeport",
	"service/web-headless",
	"service/docs",
	"configmap/web-config",
	"secret/web-secret",
}

func withVerb(verb string) []string {
	var out []string
	for _, o := range exampleObjects {
		out = append(out, o+" "+verb)
	}
	return out
}

func TestE2ECLI(t *testing.T) {
	c := startServer(t)

	t.Run("version", func(t *testing.T) {
		out := c.ok(t, "version")
		if !strings.Contains(out, "Client Version:") || !strings.Contains(out, "Server Version:") {
			t.Errorf("version: %q", out)
		}
	})

	wantLines(t, "first apply", c.ok(t, "apply", "-f", examplesDir), withVerb("created")...)
	wantLines(t, "re-apply", c.ok(t, "apply", "-f", examplesDir), withVerb("unchanged")...)

	t.Run("dry run", func(t *testing.T) {
		cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry, namespace: demo}\ndata: {a: b}\n---\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: demo}\ndata: {greeting: changed}\n"
		wantLines(t, "apply --dry-run=server", c.okIn(t, cm, "apply", "--dry-run=server", "-f", "-"),
			"configmap/dry created (server dry run)", "configmap/web-config configured (server dry run)")
		c.fails(t, `configmaps "dry" not found`, "get", "cm", "dry", "-n", "demo")
		if got := c.ok(t, "get", "cm", "web-config", "-n", "demo", "-o", "jsonpath={.data.greeting}"); got != "hello from skiff" {
			t.Errorf("dry run changed web-config: greeting %q", got)
		}
	})

	t.Run("get", func(t *testing.T) { e2eGet(t, c) })

	t.Run("reapply changed", func(t *testing.T) {
		// Someone else labels the deployment; apply must keep that label.
		wantLines(t, "label", c.ok(t, "label", "deploy", "web", "-n", "demo", "owner=ops"), "deployment.apps/web labeled")
		web, err := os.ReadFile(filepath.Join(examplesDir, "10-web.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		changed := strings.Replace(string(web), "replicas: 3", "replicas: 4", 1)
		out := c.okIn(t, changed, "apply", "-f", "-")
		wantLines(t, "changed apply", out, "deployment.apps/web configured", "service/web unchanged")
		if got := c.ok(t, "get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas} {.metadata.labels.owner}"); got != "4 ops" {
			t.Errorf("after apply: replicas and owner label = %q, want \"4 ops\"", got)
		}
		wantLines(t, "apply back", c.ok(t, "apply", "-f", filepath.Join(examplesDir, "10-web.yaml")), "deployment.apps/web configured", "service/web unchanged")
	})

	t.Run("label", func(t *testing.T) {
		c.ok(t, "label", "deploy/web", "-n", "demo", "tier=front")
		c.fails(t, `already has the value "front".*--overwrite`, "label", "deploy/web", "-n", "demo", "tier=back")
		wantLines(t, "overwrite", c.ok(t, "label", "deploy/web", "-n", "demo", "tier=back", "--overwrite"), "deployment.apps/web labeled")
		wantLines(t, "remove", c.ok(t, "label", "deploy/web", "-n", "demo", "tier-"), "deployment.apps/web unlabeled")
		if got := c.ok(t, "get", "deploy/web", "-n", "demo", "-o", "jsonpath={.metadata.labels.tier}"); got != "" {
			t.Errorf("tier label still %q", got)
		}
	})

	t.Run("scale", func(t *testing.T) {
		wantLines(t, "scale", c.ok(t, "scale", "deploy/web", "-n", "demo", "--replicas", "2"), "deployment.apps/web scaled")
		if got := c.ok(t, "get", "deploy", "web", "-n", "demo", "-o", "jsonpath={.spec.replicas}"); got != "2" {
			t.Errorf("replicas after scale = %q", got)
		}
		c.fails(t, "cannot be scaled|not found|NotFound|scale", "scale", "svc/web", "-n", "demo", "--replicas", "2")
	})

	t.Run("rollout", func(t *testing.T) {
		wantLines(t, "restart", c.ok(t, "rollout", "restart", "deploy/web", "-n", "demo"), "deployment.apps/web restarted")
		got := c.ok(t, "get", "deploy", "web", "-n", "demo", "-o", `jsonpath={.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}`)
		if _, err := time.Parse(time.RFC3339, got); err != nil {
			t.Errorf("restartedAt = %q: %v", got, err)
		}
		// Without a deployment controller there is no progress: status must time out with exit 1.
		out, errOut, code := c.try("rollout", "status", "deploy/web", "-n", "demo", "--timeout", "3s")
		if code != 0 && (code != 1 || !strings.Contains(errOut, "timed out")) {
			t.Errorf("rollout status: exit %d, stderr %q", code, errOut)
		}
		if !strings.Contains(out, `deployment "web"`) && !strings.Contains(out, "Waiting for deployment spec update") {
			t.Errorf("rollout status printed no progress: %q", out)
		}
		out = c.ok(t, "rollout", "history", "deploy/web", "-n", "demo")
		if !strings.Contains(out, "REVISION") {
			t.Errorf("history: %q", out)
		}
		if len(lines(out)) >= 4 { // a controller made revisions 1 and 2: undo goes back to 1
			wantLines(t, "undo", c.ok(t, "rollout", "undo", "deploy/web", "-n", "demo"), "deployment.apps/web rolled back")
		} else {
			c.fails(t, "no rollout history|no previous revision", "rollout", "undo", "deploy/web", "-n", "demo")
		}
		c.fails(t, "rollout works on deployments", "rollout", "status", "svc/web", "-n", "demo")
	})

	t.Run("describe", func(t *testing.T) {
		out := c.ok(t, "describe", "deploy", "web", "-n", "demo")
		for _, want := range []string{"Name:", "web", "Namespace:", "demo", "Replicas:", "Events:"} {
			if !strings.Contains(out, want) {
				t.Errorf("describe lacks %q:\n%s", want, out)
			}
		}
		out = c.ok(t, "describe", "svc/web-nodeport", "-n", "demo")
		if !strings.Contains(out, "NodePort:") || !strings.Contains(out, "30080") {
			t.Errorf("describe svc:\n%s", out)
		}
	})

	t.Run("watch", func(t *testing.T) { e2eWatch(t, c) })
	t.Run("bad input", func(t *testing.T) { e2eBadInput(t, c) })
	t.Run("logs and exec without agent", func(t *testing.T) {
		pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: lonely, namespace: demo, labels: {example: skiff}}\nspec:\n  containers: [{name: c, image: skiff.test/echo:v1}]\n"
		wantLines(t, "pod", c.okIn(t, pod, "apply", "-f", "-"), "pod/lonely created")
		c.fails(t, ".+", "logs", "lonely", "-n", "demo")
		c.fails(t, ".+", "exec", "lonely", "-n", "demo", "--", "true")
		c.fails(t, `no container "x"`, "logs", "lonely", "-n", "demo", "-c", "x")
	})

	t.Run("delete", func(t *testing.T) {
		wantLines(t, "delete by file", c.ok(t, "delete", "-f", filepath.Join(examplesDir, "40-docs-externalname.yaml"), "--wait", "--timeout", "30s"),
			"service/docs deleted", "service/docs gone")
		c.fails(t, `services "docs" not found`, "get", "svc", "docs", "-n", "demo")
		out := c.ok(t, "delete", "svc", "-l", "app=web", "-n", "demo")
		wantLines(t, "delete by selector", out, "service/web deleted", "service/web-headless deleted", "service/web-nodeport deleted")
		c.ok(t, "delete", "deploy", "web", "-n", "demo")
		c.ok(t, "delete", "cm,secret", "-l", "example=skiff", "-n", "demo")
		c.fails(t, `"nope" not found`, "delete", "cm", "nope", "-n", "demo")
		c.ok(t, "delete", "cm", "nope", "-n", "demo", "--ignore-not-found")
		if out, _, _ := c.try("get", "svc,cm,secret,deploy", "-n", "demo", "-o", "name"); strings.TrimSpace(out) != "" {
			t.Errorf("left over after deletes:\n%s", out)
		}
	})
}

func (c *e2eCluster) okIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := c.tryIn(stdin, args...)
	if code != 0 {
		t.Fatalf("skiff %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func e2eGet(t *testing.T, c *e2eCluster) {
	out := c.ok(t, "get", "svc", "-n", "demo")
	rows := map[string][]string{}
	for _, l := range lines(out)[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	if h := strings.Fields(lines(out)[0]); strings.Join(h, " ") != "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE" {
		t.Errorf("service header %v", h)
	}
	check := func(name, typ, ip, ext, ports string) {
		t.Helper()
		r := rows[name]
		if len(r) < 5 || r[1] != typ || (ip != "*" && r[2] != ip) || r[3] != ext || r[4] != ports {
			t.Errorf("service %s row %v, want %s %s %s %s", name, r, typ, ip, ext, ports)
		}
	}
	check("web", "ClusterIP", "*", "<none>", "80/TCP")
	check("web-nodeport", "NodePort", "*", "<none>", "80:30080/TCP")
	check("web-headless", "ClusterIP", "None", "<none>", "8080/TCP")
	check("docs", "ExternalName", "<none>", "docs.example.com", "<none>")
	if ip := rows["web"]; len(ip) > 2 && !strings.HasPrefix(ip[2], "10.") {
		t.Errorf("web has no ClusterIP from the service CIDR: %v", ip)
	}

	out = c.ok(t, "get", "deploy", "-n", "demo")
	if f := strings.Fields(lines(out)[1]); len(f) != 5 || f[0] != "web" || !strings.HasSuffix(f[1], "/3") {
		t.Errorf("deployment row %v", f)
	}
	out = c.ok(t, "get", "deployments.apps", "web", "-n", "demo", "-o", "wide")
	if !strings.Contains(out, "skiff.test/echo:v1") || !strings.Contains(out, "app=web") {
		t.Errorf("wide deployment:\n%s", out)
	}

	var obj map[string]any
	if err := yaml.Unmarshal([]byte(c.ok(t, "get", "deploy", "web", "-n", "demo", "-o", "yaml")), &obj); err != nil || obj["kind"] != "Deployment" {
		t.Errorf("-o yaml: kind %v, %v", obj["kind"], err)
	}
	var list struct {
		Kind  string
		Items []map[string]any
	}
	if err := json.Unmarshal([]byte(c.ok(t, "get", "svc", "-n", "demo", "-o", "json")), &list); err != nil || list.Kind != "List" || len(list.Items) != 4 {
		t.Errorf("-o json: kind %q, %d items, %v", list.Kind, len(list.Items), err)
	}
	wantLines(t, "-o name", c.ok(t, "get", "cm,secret", "-n", "demo", "-o", "name", "-l", "example=skiff"), "configmap/web-config", "secret/web-secret")
	if got := c.ok(t, "get", "svc", "-n", "demo", "-o", "jsonpath={.items[*].metadata.name}"); got != "docs web web-headless web-nodeport" {
		t.Errorf("jsonpath names = %q", got)
	}
	// (Pods may exist once controllers run; a selector nothing matches must print nothing.)
	if out, errOut, code := c.try("get", "po", "-n", "demo", "-l", "app=nothing"); code != 0 || out != "" || !strings.Contains(errOut, "No resources found in demo namespace.") {
		t.Errorf("empty list: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out = c.ok(t, "get", "svc", "-A", "-l", "example=skiff")
	if !strings.HasPrefix(out, "NAMESPACE") || len(lines(out)) != 5 {
		t.Errorf("-A -l:\n%s", out)
	}
	wantLines(t, "field selector", c.ok(t, "get", "svc", "-n", "demo", "--field-selector", "metadata.name=web", "-o", "name"), "service/web")
	out = c.ok(t, "get", "ns", "demo")
	if !strings.Contains(out, "Active") {
		t.Errorf("namespace:\n%s", out)
	}
	out = c.ok(t, "get", "cm", "web-config", "-n", "demo")
	if f := strings.Fields(lines(out)[1]); f[1] != "2" {
		t.Errorf("configmap DATA: %v", f)
	}
	out = c.ok(t, "get", "secrets", "web-secret", "-n", "demo")
	if f := strings.Fields(lines(out)[1]); f[1] != "Opaque" || f[2] != "1" {
		t.Errorf("secret row: %v", f)
	}
	for _, typ := range []string{"no", "rs", "rc", "ep", "endpointslices", "events", "leases", "pods", "services", "deployment"} {
		c.ok(t, "get", typ, "-A")
	}
}

func e2eWatch(t *testing.T, c *e2eCluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, "--kubeconfig", c.kubeconfig, "get", "cm", "-n", "demo", "-w")
	var mu sync.Mutex
	var out bytes.Buffer
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	waitFor := func(s string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			got := out.String()
			mu.Unlock()
			if strings.Contains(got, s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("watch output lacks %q after 30s:\n%s", s, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("web-config")
	c.okIn(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: demo, labels: {example: skiff}}\ndata: {a: b}\n", "apply", "-f", "-")
	waitFor("watched")
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(out.String(), "NAME"); n != 1 {
		t.Errorf("watch printed the header %d times:\n%s", n, out.String())
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func e2eBadInput(t *testing.T, c *e2eCluster) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c.fails(t, `the path ".*missing.yaml" does not exist`, "apply", "-f", filepath.Join(dir, "missing.yaml"))
	bad := write("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n   x: y\n")
	c.fails(t, `bad.yaml: document 2: line 9: `, "apply", "-f", bad)
	c.fails(t, `unknown resource type "deploymnets": did you mean "deployments"\?`, "get", "deploymnets")
	c.fails(t, `did you mean "Deployment"`, "apply", "-f", write("kind.yaml", "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x, namespace: demo}\n"))

	// One invalid object: the 422's field causes are printed and the valid object is not created.
	mixed := write("mixed.yaml", `apiVersion: v1
kind: ConfigMap
metadata: {name: atomic-ok, namespace: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken, namespace: demo}
spec:
  replicas: -1
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: i}]}
`)
	errOut := c.fails(t, `(?s)mixed.yaml: document 2 \(line 5\): Deployment broken: .*invalid.*\n  \* spec\.`, "apply", "-f", mixed)
	if !strings.Contains(errOut, "nothing was changed") {
		t.Errorf("stderr %q does not say nothing changed", errOut)
	}
	c.fails(t, `"atomic-ok" not found`, "get", "cm", "atomic-ok", "-n", "demo")
	// With --continue-on-error the valid object is applied, and the exit is still non-zero.
	out, _, code := c.try("apply", "--continue-on-error", "-f", mixed)
	if code == 0 || !strings.Contains(out, "configmap/atomic-ok created") {
		t.Errorf("--continue-on-error: exit %d, stdout %q", code, out)
	}
	c.ok(t, "delete", "cm", "atomic-ok", "-n", "demo")

	// Wrong credentials and an unreachable server.
	kc, err := os.ReadFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	badToken := regexp.MustCompile(`(?m)^(\s*token:\s*).*$`).ReplaceAllString(string(kc), "${1}not-the-token")
	if badToken == string(kc) {
		t.Logf("kubeconfig has no token line; skipping the 401 case")
	} else {
		bc := *c
		bc.kubeconfig = write("bad-token.kubeconfig", badToken)
		bc.fails(t, `401 Unauthorized.*token`, "get", "pods")
	}
	unreachable := regexp.MustCompile(`(?m)^(\s*server:\s*).*$`).ReplaceAllString(string(kc), "${1}https://127.0.0.1:1")
	uc := *c
	uc.kubeconfig = write("unreachable.kubeconfig", unreachable)
	uc.fails(t, `cannot reach the API server at https://127.0.0.1:1`, "get", "pods")
	nc := *c
	nc.kubeconfig = filepath.Join(dir, "none")
	nc.fails(t, `client config .*none`, "get", "pods")
	c.fails(t, `unknown output format "tabel"`, "get", "pods", "-o", "tabel")
}
