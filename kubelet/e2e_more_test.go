package kubelet

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/skiffnet/skiff/kubelet/images"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// An agent restart adopts the running containers: same container, same start time, no
// restart, same IP; and the new agent never hands that IP out again.
func TestE2EAgentRestartAdoption(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{})
	p := cl.createPod(t, echoPod("default", "adopted", n.Name))
	p = waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "Running", running)
	before := *ctrStatus(p, "echo")
	ip := p.Status.PodIP
	// Ready without a readiness probe means started, not yet listening.
	n.waitServing(t, ip)

	n.stop()
	// The pod keeps serving while no agent runs.
	if _, err := n.httpGet("http://" + ip + ":8080/"); err != nil {
		t.Fatalf("pod stopped serving with the agent down: %v", err)
	}
	// A pod created while the agent is down starts once it is back.
	p2 := cl.createPod(t, echoPod("default", "later", n.Name))
	n.start(t)

	p2 = waitPod(t, cl.Client, p2.Namespace, p2.Name, podTimeout, "Running", running)
	if p2.Status.PodIP == ip {
		t.Fatalf("restarted agent handed out %s twice", ip)
	}
	// Give the adopted pod a few syncs, then compare.
	time.Sleep(0) // no fixed wait: poll the status below
	waitFor(t, 10*time.Second, "adopted pod synced by the new agent", func() (bool, string) {
		ok := false
		n.Agent.mu.Lock()
		if w := n.Agent.workers[p.UID]; w != nil {
			w.mu.Lock()
			r := w.ctrs["echo"]
			ok = r != nil && r.exists
			w.mu.Unlock()
		}
		n.Agent.mu.Unlock()
		return ok, ""
	})
	p, _ = getPod(cl.Client, p.Namespace, p.Name)
	after := *ctrStatus(p, "echo")
	if after.RestartCount != 0 || after.ContainerID != before.ContainerID || after.State.Running == nil ||
		!after.State.Running.StartedAt.Equal(&before.State.Running.StartedAt) || !podReady(p) || p.Status.PodIP != ip {
		t.Fatalf("not adopted:\nbefore %+v\nafter  %+v", before, after)
	}
	if _, err := n.httpGet("http://" + ip + ":8080/"); err != nil {
		t.Fatalf("adopted pod unreachable: %v", err)
	}
}

// An OCI layout tarball imports like a docker archive.
func TestE2EImageImportOCILayout(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{})
	dockerTar := filepath.Join(testImages(t), images.Echo.File)
	img, err := tarball.ImageFromPath(dockerTar, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "oci"), emptyIndex())
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "skiff.local/echo-oci:v2"})); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarDir(&buf, filepath.Join(dir, "oci")); err != nil {
		t.Fatal(err)
	}
	names, err := n.RT.Import(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "skiff.local/echo-oci:v2" {
		t.Fatalf("imported %v", names)
	}
	p := echoPod("default", "oci", n.Name)
	p.Spec.Containers[0].Image = "skiff.local/echo-oci:v2"
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	cl.createPod(t, p)
	waitPod(t, cl.Client, "default", "oci", podTimeout, "Running", running)

	// A tarball without image names is refused with a clear error.
	if _, err := n.RT.Import(context.Background(), strings.NewReader("not a tarball")); err == nil {
		t.Fatal("garbage imported")
	}
}

// Bad pods get a status that says why; the agent keeps serving the good one.
func TestE2EBadInput(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{})
	missing := echoPod("default", "noimage", n.Name)
	missing.Spec.Containers[0].Image = "skiff.local/does-not-exist:v1"
	badCmd := echoPod("default", "badcmd", n.Name)
	badCmd.Spec.Containers[0].Command = []string{"/no/such/binary"}
	badVol := echoPod("default", "badvol", n.Name)
	dirType := corev1.HostPathDirectory
	badVol.Spec.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/skiff-test", Type: &dirType}}}}
	badVol.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "h", MountPath: "/h"}}
	badEnv := echoPod("default", "badenv", n.Name)
	badEnv.Spec.Containers[0].Env = append(badEnv.Spec.Containers[0].Env, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}})
	never := echoPod("default", "neverpull", n.Name)
	never.Spec.Containers[0].Image = "skiff.local/does-not-exist:v1"
	never.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	good := echoPod("default", "good", n.Name)
	for _, p := range []*corev1.Pod{missing, badCmd, badVol, badEnv, never, good} {
		cl.createPod(t, p)
	}
	waitPod(t, cl.Client, "default", "good", podTimeout, "Running", running)
	waiting := func(name, reason, msgPart string) {
		t.Helper()
		waitPod(t, cl.Client, "default", name, podTimeout, reason, func(p *corev1.Pod) bool {
			s := ctrStatus(p, "echo")
			return s != nil && s.State.Waiting != nil && strings.Contains(reason, s.State.Waiting.Reason) && strings.Contains(s.State.Waiting.Message, msgPart)
		})
	}
	waiting("noimage", "ImagePullBackOff", "skiff image import")
	waiting("badcmd", "RunContainerError|CrashLoopBackOff", "/no/such/binary")
	waiting("badvol", "ContainerCreating", "/nonexistent/skiff-test does not exist")
	waiting("badenv", "CreateContainerConfigError", `configmap "nope"`)
	waiting("neverpull", "ErrImageNeverPull", "skiff image import")
	p, _ := getPod(cl.Client, "default", "badvol")
	if !strings.Contains(p.Status.Message, "FailedMount") {
		t.Errorf("badvol pod message %q", p.Status.Message)
	}
	n.waitServing(t, mustPod(t, cl.Client, "good").Status.PodIP)
}

func mustPod(t testing.TB, c kubernetes.Interface, name string) *corev1.Pod {
	p, err := getPod(c, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Logs and exec through the API server's proxy to the agent API.
func TestE2ELogsAndExecThroughAPI(t *testing.T) {
	cl := newCluster(t)
	if cl.Env == nil {
		t.Skip("needs the real API server")
	}
	n := cl.node(t, Config{NodeIP: "127.0.0.1", ListenHostNS: true})
	p := cl.createPod(t, echoPod("default", "talk", n.Name))
	waitPod(t, cl.Client, "default", "talk", podTimeout, "Running", running)
	var logs []byte
	waitFor(t, 20*time.Second, "logs", func() (bool, string) {
		var err error
		logs, err = cl.Client.CoreV1().Pods("default").GetLogs("talk", &corev1.PodLogOptions{Container: "echo", TailLines: ptrInt64(5)}).DoRaw(context.Background())
		return err == nil && strings.Contains(string(logs), "serving pod=talk"), string(logs) + errString(err)
	})
	// exec with stdin, framed output.
	cfg := rest.CopyConfig(cl.Env.Config)
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := cl.Env.URL + "/api/v1/namespaces/default/pods/talk/exec?container=echo&command=/echo&command=stdin"
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader("ping through stdin"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("exec: %d %s", resp.StatusCode, b)
	}
	var stdout, exit string
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
			break
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
		io.ReadFull(resp.Body, b)
		switch hdr[0] {
		case 1:
			stdout += string(b)
		case 3:
			exit = string(b)
		}
	}
	if stdout != "ping through stdin" || exit != "0" {
		t.Fatalf("exec stdout %q exit %q", stdout, exit)
	}
	// The agent refuses other tokens.
	areq, _ := http.NewRequest(http.MethodGet, "https://"+n.Agent.ListenAddr().String()+"/containerLogs/default/talk/echo", nil)
	areq.Header.Set("Authorization", "Bearer "+cl.Env.JoinToken)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	aresp, err := insecure.Do(areq)
	if err != nil {
		t.Fatal(err)
	}
	aresp.Body.Close()
	if aresp.StatusCode != http.StatusUnauthorized {
		t.Errorf("agent API with a foreign token: %d", aresp.StatusCode)
	}
	_ = p
}

func ptrInt64(v int64) *int64 { return &v }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		h, _ := tar.FileInfoHeader(fi, "")
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

var _ = metav1.Now
