package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffnet/skiff/kubelet/images"
	"github.com/skiffnet/skiff/kubelet/podnet"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

const podTimeout = 60 * time.Second

type fakeDatapath struct {
	mu       sync.Mutex
	attached map[string]bool
	detached map[string]bool
}

func (f *fakeDatapath) AttachPod(ifname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attached[ifname] = true
	return nil
}

func (f *fakeDatapath) DetachPod(ifname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.detached[ifname] = true
	return nil
}

func TestE2EEchoPod(t *testing.T) {
	cl := newCluster(t)
	dp := &fakeDatapath{attached: map[string]bool{}, detached: map[string]bool{}}
	n := cl.node(t, Config{Datapath: dp})
	p := cl.createPod(t, echoPod("default", "echo-1", n.Name))
	p = waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "Running and Ready", running)
	if p.Status.PodIP == "" || p.Status.HostIP != "10.123.0.2" {
		t.Fatalf("podIP %q hostIP %q", p.Status.PodIP, p.Status.HostIP)
	}
	// The whole status, as the kubelet reports it.
	if len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != p.Status.PodIP || len(p.Status.HostIPs) != 1 || p.Status.StartTime == nil || p.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("status: podIPs %v hostIPs %v startTime %v qos %s", p.Status.PodIPs, p.Status.HostIPs, p.Status.StartTime, p.Status.QOSClass)
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodReadyToStartContainers} {
		ok := false
		for _, c := range p.Status.Conditions {
			ok = ok || (c.Type == ct && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero())
		}
		if !ok {
			t.Errorf("condition %s not True: %+v", ct, p.Status.Conditions)
		}
	}
	if s := ctrStatus(p, "echo"); s == nil || s.State.Running == nil || !s.Ready || s.Started == nil || !*s.Started || s.RestartCount != 0 ||
		!strings.HasPrefix(s.ContainerID, "containerd://") || !strings.Contains(s.ImageID, "@sha256:") || s.Image != images.Echo.Ref {
		t.Errorf("container status %+v", s)
	}
	for _, reason := range []string{"Pulled", "Created", "Started"} {
		waitEvent(t, cl, "echo-1", reason)
	}
	var body string
	waitFor(t, 20*time.Second, "HTTP from the pod", func() (bool, string) {
		var err error
		body, err = n.httpGet("http://" + p.Status.PodIP + ":8080/")
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if !strings.Contains(body, "pod=echo-1 ip="+p.Status.PodIP) {
		t.Fatalf("echo answered %q", body)
	}
	// The pod's DNS and hosts files.
	out, _ := n.exec(t, p, "echo", "/echo", "cat", "/etc/resolv.conf", "/etc/hosts")
	for _, want := range []string{"nameserver 10.96.0.10", "search default.svc.cluster.local svc.cluster.local cluster.local", "options ndots:5", p.Status.PodIP + "\techo-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("pod files lack %q:\n%s", want, out)
		}
	}
	// TCP and UDP echo.
	c, err := n.dial("tcp", p.Status.PodIP+":9000")
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello tcp"))
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	k, _ := c.Read(buf)
	c.Close()
	if string(buf[:k]) != "hello tcp" {
		t.Errorf("tcp echo %q", buf[:k])
	}
	u, err := n.dial("udp", p.Status.PodIP+":9001")
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("hello udp"))
	u.SetReadDeadline(time.Now().Add(3 * time.Second))
	k, _ = u.Read(buf)
	u.Close()
	if string(buf[:k]) != "hello udp" {
		t.Errorf("udp echo %q", buf[:k])
	}
	// Node status.
	node, err := cl.Client.CoreV1().Nodes().Get(context.Background(), n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Status.NodeInfo.KernelVersion == "" || node.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 || node.Spec.PodCIDR != "10.244.77.0/24" {
		t.Errorf("node status incomplete: %+v spec %+v", node.Status.NodeInfo, node.Spec)
	}
	if _, ok := node.Status.Capacity[corev1.ResourcePods]; !ok {
		t.Errorf("node capacity lacks pods: %v", node.Status.Capacity)
	}
	lease, err := cl.Client.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), n.Name, metav1.GetOptions{})
	if err != nil || lease.Spec.RenewTime == nil {
		t.Errorf("node lease: %v %+v", err, lease)
	}
	// The datapath got the pod's veth, and loses it when the pod goes.
	veth := podnet.HostVethName("default", "echo-1")
	dp.mu.Lock()
	ok := dp.attached[veth]
	dp.mu.Unlock()
	if !ok {
		t.Errorf("datapath not attached to %s: %v", veth, dp.attached)
	}
	if err := cl.Client.CoreV1().Pods("default").Delete(context.Background(), "echo-1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, podTimeout, "datapath detach", func() (bool, string) {
		dp.mu.Lock()
		defer dp.mu.Unlock()
		return dp.detached[veth], ""
	})
}

// Two containers share an emptyDir (written by an init container) and the network
// namespace; env comes from a ConfigMap and a Secret.
func TestE2ESharedVolumeNetworkAndEnv(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{})
	ctx := context.Background()
	if _, err := cl.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"COLOR": "blue", "SIZE": "9", "app.conf": "x=1\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sec"}, Data: map[string][]byte{"password": []byte("s3cret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Service that exists when the pod starts gets its variables into the pod.
	if _, err := cl.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-front"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "x"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the agent knows the Service", func() (bool, string) {
		_, err := n.Agent.services.Services("default").Get("web-front")
		return err == nil, errString(err)
	})
	svc, _ := cl.Client.CoreV1().Services("default").Get(ctx, "web-front", metav1.GetOptions{})
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "motd"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirType := corev1.HostPathDirectory
	p := echoPod("default", "pair", n.Name)
	p.Spec.Volumes = []corev1.Volume{
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &dirType}}},
		{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
	}
	p.Spec.InitContainers = []corev1.Container{{
		Name: "init", Image: images.Echo.Ref, Args: []string{"write", "/shared/hello", "from-init"},
		VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}},
	}}
	a := &p.Spec.Containers[0]
	a.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}, {Name: "conf", MountPath: "/conf"}, {Name: "secret", MountPath: "/secret", ReadOnly: true}, {Name: "host", MountPath: "/host", ReadOnly: true}}
	a.EnvFrom = []corev1.EnvFromSource{
		{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
		{Prefix: "SEC_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
	}
	a.Env = append(a.Env,
		corev1.EnvVar{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
		corev1.EnvVar{Name: "GREETING", Value: "hi $(CM_COLOR)"},
	)
	a.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
		Name: "second", Image: images.Echo.Ref,
		Env:          []corev1.EnvVar{{Name: "HTTP_PORT", Value: "8081"}, {Name: "TCP_PORT", Value: "9100"}, {Name: "UDP_PORT", Value: "9101"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/data"}},
		WorkingDir:   "/data",
	})
	p = cl.createPod(t, p)
	p = waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "Running and Ready", running)
	ip := p.Status.PodIP
	get := func(url string) string {
		var body string
		waitFor(t, 20*time.Second, url, func() (bool, string) {
			var err error
			body, err = n.httpGet(url)
			return err == nil, ""
		})
		return body
	}
	// Same network namespace: both answer on the pod IP.
	if b := get("http://" + ip + ":8081/"); !strings.Contains(b, "pod=pair") {
		t.Errorf("second container: %q", b)
	}
	if b := get("http://" + ip + ":8080/file?path=/shared/hello"); b != "from-init" {
		t.Errorf("emptyDir from init: %q", b)
	}
	// The second container writes into the shared volume (relative to its workingDir).
	if out, code := n.exec(t, p, "second", "/echo", "write", "from-second", "hello2"); code != 0 {
		t.Fatalf("exec write: %d %s", code, out)
	}
	if b := get("http://" + ip + ":8080/file?path=/shared/from-second"); b != "hello2" {
		t.Errorf("shared volume: %q", b)
	}
	sip := svc.Spec.ClusterIP
	for name, want := range map[string]string{"CM_COLOR": "blue", "CM_SIZE": "9", "PASSWORD": "s3cret", "SEC_password": "s3cret", "GREETING": "hi blue",
		"KUBERNETES_SERVICE_HOST": "10.96.0.1", "POD_IP": ip, "POD_NAME": "pair",
		"WEB_FRONT_SERVICE_HOST": sip, "WEB_FRONT_SERVICE_PORT": "80", "WEB_FRONT_SERVICE_PORT_DNS": "53", "WEB_FRONT_PORT": "tcp://" + sip + ":80",
		"WEB_FRONT_PORT_80_TCP": "tcp://" + sip + ":80", "WEB_FRONT_PORT_53_UDP_PROTO": "udp", "WEB_FRONT_PORT_53_UDP_ADDR": sip} {
		if b := get("http://" + ip + ":8080/env/" + name); b != want {
			t.Errorf("env %s = %q, want %q", name, b, want)
		}
	}
	if b := get("http://" + ip + ":8080/file?path=/conf/app.conf"); b != "x=1\n" {
		t.Errorf("configMap volume: %q", b)
	}
	if b := get("http://" + ip + ":8080/file?path=/secret/password"); b != "s3cret" {
		t.Errorf("secret volume: %q", b)
	}
	if b := get("http://" + ip + ":8080/file?path=/host/motd"); b != "from the host" {
		t.Errorf("hostPath volume: %q", b)
	}
	// Limits reached the OCI spec.
	c, err := n.RT.Client().LoadContainer(nsCtx(n), containerID(p.UID, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec(nsCtx(n))
	if err != nil {
		t.Fatal(err)
	}
	r := spec.Linux.Resources
	if r == nil || r.Memory == nil || *r.Memory.Limit != 64<<20 || r.CPU == nil || *r.CPU.Quota != 50000 {
		t.Errorf("limits not in the OCI spec: %+v", r)
	}
}

func TestE2EReadinessAndLiveness(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{ProbeUnit: 250 * time.Millisecond})
	p := echoPod("default", "probed", n.Name)
	c := &p.Spec.Containers[0]
	// Timeouts of 20 units (5 s): an exec probe is a runc exec, which takes longer than one
	// shortened unit on a busy machine, and a probe timeout is a failure.
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 20}
	// Liveness: an exec probe on a file the test removes.
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/echo", "test", "/echo"}}}, PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 20}
	c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}}, PeriodSeconds: 1, FailureThreshold: 30, TimeoutSeconds: 20}
	p = cl.createPod(t, p)
	t.Cleanup(func() {
		if t.Failed() {
			evs, _ := cl.Client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
			for _, e := range evs.Items {
				t.Logf("event %s %s: %s (x%d)", e.Type, e.Reason, e.Message, e.Count)
			}
		}
	})
	p = waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "Ready", running)
	if s := ctrStatus(p, "echo"); s.Started == nil || !*s.Started {
		t.Fatalf("started not set: %+v", s)
	}
	// Readiness flips.
	n.exec(t, p, "echo", "/echo", "write", "/tmp/unhealthy", "1")
	waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "not Ready", func(p *corev1.Pod) bool { return !podReady(p) && p.Status.Phase == corev1.PodRunning })
	n.exec(t, p, "echo", "/echo", "rm", "/tmp/unhealthy")
	waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "Ready again", running)
	// Liveness restarts the container: a fresh one (the root filesystem comes back).
	n.exec(t, p, "echo", "/echo", "rm", "/echo")
	p = waitPod(t, cl.Client, p.Namespace, p.Name, podTimeout, "restarted by liveness", func(p *corev1.Pod) bool {
		s := ctrStatus(p, "echo")
		return s != nil && s.RestartCount >= 1 && s.State.Running != nil && podReady(p)
	})
	s := ctrStatus(p, "echo")
	if s.LastTerminationState.Terminated == nil {
		t.Errorf("no last termination state: %+v", s)
	}
	evs, _ := cl.Client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
	found := false
	for _, e := range evs.Items {
		if e.Reason == "Unhealthy" && e.InvolvedObject.Name == "probed" {
			found = true
		}
	}
	if !found {
		t.Errorf("no Unhealthy event among %d events", len(evs.Items))
	}
}

func TestE2ERestartPolicies(t *testing.T) {
	cl := newCluster(t)
	n := cl.node(t, Config{})
	never := echoPod("default", "never", n.Name)
	never.Spec.RestartPolicy = corev1.RestartPolicyNever
	never.Spec.Containers[0].Args = []string{"exit", "3"}
	never = cl.createPod(t, never)

	onFail := echoPod("default", "onfailure", n.Name)
	onFail.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	onFail.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	onFail.Spec.Containers[0].Args = []string{"failonce", "/d/marker"}
	onFail.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "d", MountPath: "/d"}}
	onFail = cl.createPod(t, onFail)

	crash := echoPod("default", "crash", n.Name)
	crash.Spec.Containers[0].Args = []string{"exit", "1"}
	crash = cl.createPod(t, crash)

	initFail := echoPod("default", "initfail", n.Name)
	initFail.Spec.RestartPolicy = corev1.RestartPolicyNever
	initFail.Spec.InitContainers = []corev1.Container{{Name: "init", Image: images.Echo.Ref, Args: []string{"exit", "4"}}}
	cl.createPod(t, initFail)

	p := waitPod(t, cl.Client, "default", "never", podTimeout, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if s := ctrStatus(p, "echo"); s.State.Terminated == nil || s.State.Terminated.ExitCode != 3 || s.RestartCount != 0 {
		t.Errorf("never: %s", describeStatuses(p.Status.ContainerStatuses))
	}
	p = waitPod(t, cl.Client, "default", "onfailure", podTimeout, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if s := ctrStatus(p, "echo"); s.RestartCount != 1 || s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 || s.LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("onfailure: %s", describeStatuses(p.Status.ContainerStatuses))
	}
	p = waitPod(t, cl.Client, "default", "crash", podTimeout, "CrashLoopBackOff", func(p *corev1.Pod) bool {
		s := ctrStatus(p, "echo")
		return s != nil && s.RestartCount >= 2 && s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff"
	})
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("crash-looping pod phase %s", p.Status.Phase)
	}
	// A failed init container of a Never pod fails the pod; the app container never runs.
	p = waitPod(t, cl.Client, "default", "initfail", podTimeout, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if s := ctrStatus(p, "init"); s == nil || s.State.Terminated == nil || s.State.Terminated.ExitCode != 4 {
		t.Errorf("initfail init: %s", describeStatuses(p.Status.InitContainerStatuses))
	}
	if s := ctrStatus(p, "echo"); s == nil || s.State.Running != nil || s.State.Terminated != nil {
		t.Errorf("initfail app container ran: %s", describeStatuses(p.Status.ContainerStatuses))
	}
}

// A pod deleted through the API gets SIGTERM, its grace period, then SIGKILL.
func TestE2EGracefulTermination(t *testing.T) {
	cl := newCluster(t)
	if cl.Env == nil {
		t.Skip("needs the real API server's graceful deletion")
	}
	n := cl.node(t, Config{})
	ctx := context.Background()
	polite := echoPod("default", "polite", n.Name)
	polite.Spec.TerminationGracePeriodSeconds = ptr.To(int64(20))
	polite.Spec.Containers[0].Env = append(polite.Spec.Containers[0].Env, corev1.EnvVar{Name: "TERM_DELAY", Value: "1s"})
	stubborn := echoPod("default", "stubborn", n.Name)
	stubborn.Spec.TerminationGracePeriodSeconds = ptr.To(int64(1))
	stubborn.Spec.Containers[0].Env = append(stubborn.Spec.Containers[0].Env, corev1.EnvVar{Name: "TERM_DELAY", Value: "1h"})
	for _, p := range []*corev1.Pod{polite, stubborn} {
		cl.createPod(t, p)
	}
	for _, name := range []string{"polite", "stubborn"} {
		waitPod(t, cl.Client, "default", name, podTimeout, "Running", running)
	}
	w, err := cl.Client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for _, name := range []string{"polite", "stubborn"} {
		if err := cl.Client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	last := map[string]*corev1.Pod{}
	gone := map[string]bool{}
	deadline := time.After(podTimeout)
	for len(gone) < 2 {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == "DELETED" {
				gone[p.Name] = true
			} else {
				last[p.Name] = p
			}
		case <-deadline:
			t.Fatalf("pods not gone: %v", gone)
		}
	}
	code := func(name string) int32 {
		s := ctrStatus(last[name], "echo")
		if s == nil || s.State.Terminated == nil {
			t.Fatalf("%s: no final terminated state: %s", name, describeStatuses(last[name].Status.ContainerStatuses))
		}
		return s.State.Terminated.ExitCode
	}
	if c := code("polite"); c != 0 {
		t.Errorf("polite pod exited %d, want 0 (SIGTERM handled within the grace period)", c)
	}
	if c := code("stubborn"); c != 137 {
		t.Errorf("stubborn pod exited %d, want 137 (SIGKILL after the grace period)", c)
	}
	cs, _ := n.RT.List(ctx)
	if len(cs) != 0 {
		t.Errorf("containers left after deletion: %v", cs)
	}
}
