package kubelet

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/skiffnet/skiff/datapath/netns/privtest"
	corev1 "k8s.io/api/core/v1"
)

// privateContainerd runs a containerd of the test's own (the shared one must never be
// restarted by a test) and returns its socket and a restart function.
func privateContainerd(t *testing.T) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		if privtest.E2E() {
			t.Fatal("SKIFF_E2E=1 and the containerd binary is not on PATH (apt-get install containerd)")
		}
		t.Skip("containerd binary not on PATH")
	}
	id := randHex(6)
	root := t.TempDir()
	state := "/run/skiff-test-" + id
	sock := filepath.Join(state, "containerd.sock")
	cfg := filepath.Join(root, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n",
		filepath.Join(root, "root"), state, sock, sock+".ttrpc")), 0o600)
	var cmd *exec.Cmd
	start := func() {
		cmd = exec.Command(bin, "--config", cfg)
		logf, _ := os.Create(filepath.Join(root, "containerd.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "private containerd", func() (bool, string) {
			c, err := net.Dial("unix", sock)
			if err == nil {
				c.Close()
			}
			return err == nil, fmt.Sprint(err)
		})
	}
	stop := func() {
		// Only containerd itself (by pid): the shims keep the containers running.
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	start()
	t.Cleanup(func() {
		stop()
		os.RemoveAll(state)
	})
	return sock, func() { stop(); start() }
}

// The agent survives a containerd restart: running pods keep running and are not
// restarted, and new pods start once containerd is back.
func TestE2EContainerdRestart(t *testing.T) {
	cl := newCluster(t)
	sock, restart := privateContainerd(t)
	n := cl.node(t, Config{ContainerdSocket: sock})
	p := cl.createPod(t, echoPod("default", "survivor", n.Name))
	p = waitPod(t, cl.Client, "default", "survivor", podTimeout, "Running", running)
	before := *ctrStatus(p, "echo")
	n.waitServing(t, p.Status.PodIP)

	restart()
	if _, err := n.httpGet("http://" + p.Status.PodIP + ":8080/"); err != nil {
		t.Fatalf("pod stopped serving across the containerd restart: %v", err)
	}
	cl.createPod(t, echoPod("default", "newcomer", n.Name))
	waitPod(t, cl.Client, "default", "newcomer", podTimeout, "Running after the restart", running)
	p, _ = getPod(cl.Client, "default", "survivor")
	after := *ctrStatus(p, "echo")
	if after.RestartCount != 0 || after.ContainerID != before.ContainerID || !podReady(p) {
		t.Fatalf("survivor changed:\nbefore %+v\nafter  %+v", before, after)
	}
	// The exit waiter came back too: a crash is noticed and the container restarts.
	n.exec(t, p, "echo", "/echo", "write", "/tmp/x", "y")
	c, _ := n.RT.Client().LoadContainer(nsCtx(n), containerID(p.UID, "echo"))
	task, err := c.Task(nsCtx(n), nil)
	if err != nil {
		t.Fatal(err)
	}
	task.Kill(nsCtx(n), syscall.SIGKILL)
	waitPod(t, cl.Client, "default", "survivor", podTimeout, "restarted after a kill", func(p *corev1.Pod) bool {
		s := ctrStatus(p, "echo")
		return s.RestartCount == 1 && s.State.Running != nil
	})
}
