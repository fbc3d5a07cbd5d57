package apiserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffnet/skiff/controlplane/server"
	"github.com/skiffnet/skiff/controlplane/testenv"
)

func deployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "img-a:1"}, {Name: "b", Image: "img-b:1"}}}}}}
}

func TestPatchTypes(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	ns := newNS(t, env)
	ds := env.Client.AppsV1().Deployments(ns)
	d, err := ds.Create(ctx, deployment("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate.MaxSurge.StrVal != "25%" ||
		*d.Spec.RevisionHistoryLimit != 10 || *d.Spec.ProgressDeadlineSeconds != 600 || *d.Spec.Replicas != 1 || d.Generation != 1 {
		t.Fatalf("deployment defaults: %+v", d.Spec)
	}
	// strategic merge: containers merge by name
	d, err = ds.Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"img-b:2"}]}}}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 2 || cs[0].Image != "img-a:1" || cs[1].Image != "img-b:2" || d.Generation != 2 {
		t.Fatalf("strategic merge: %+v gen %d", cs, d.Generation)
	}
	// merge patch replaces lists
	d, err = ds.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{})
	if err != nil || *d.Spec.Replicas != 3 {
		t.Fatalf("merge patch: %v", err)
	}
	// JSON patch
	d, err = ds.Patch(ctx, "web", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"img-a:3"}]`), metav1.PatchOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "img-a:3" {
		t.Fatalf("json patch: %v", err)
	}
	// a patch with a stale resourceVersion conflicts
	_, err = ds.Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"resourceVersion":"1"},"spec":{"replicas":4}}`), metav1.PatchOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("stale patch: want conflict, got %v", err)
	}
	// a failing JSON patch test op is refused
	_, err = ds.Patch(ctx, "web", types.JSONPatchType, []byte(`[{"op":"test","path":"/spec/replicas","value":9}]`), metav1.PatchOptions{})
	if err == nil {
		t.Fatal("failing test op accepted")
	}
	// unknown field in a patch
	_, err = ds.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicaz":3}}`), metav1.PatchOptions{})
	wantStatus(t, err, 400)
	// scale subresource
	sc, err := ds.GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 3 || sc.Status.Selector != "app=web" {
		t.Fatalf("get scale: %v %+v", err, sc)
	}
	sc.Spec.Replicas = 5
	if _, err := ds.UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":6}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	d, _ = ds.Get(ctx, "web", metav1.GetOptions{})
	if *d.Spec.Replicas != 6 {
		t.Fatalf("after scale: %d", *d.Spec.Replicas)
	}
	// status subresource: main updates ignore status, status updates ignore spec
	gen := d.Generation
	d.Status.Replicas = 42
	d.Labels = map[string]string{"l": "1"}
	d, err = ds.Update(ctx, d, metav1.UpdateOptions{})
	if err != nil || d.Status.Replicas != 0 || d.Generation != gen {
		t.Fatalf("update ignoring status: %v status=%d gen %d->%d", err, d.Status.Replicas, gen, d.Generation)
	}
	d.Status.Replicas = 7
	d.Spec.Replicas = ptr(int32(100))
	d, err = ds.UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil || d.Status.Replicas != 7 || *d.Spec.Replicas != 6 || d.Generation != gen {
		t.Fatalf("status update: %v", err)
	}
}

func TestDryRun(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	ns := newNS(t, env)
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod("dry"), dry); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Pods(ns).Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry-run pod stored: %v", err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.1.1", Type: corev1.ServiceTypeNodePort,
		Ports: []corev1.ServicePort{{Port: 80, NodePort: 30100}}}}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, dry); err != nil {
		t.Fatal(err)
	}
	// nothing was allocated: the real create gets the same IP and port
	got, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil || got.Spec.ClusterIP != "10.96.1.1" || got.Spec.Ports[0].NodePort != 30100 {
		t.Fatalf("create after dry run: %v", err)
	}
	// dry-run of invalid still validates
	bad := pod("BAD")
	_, err = env.Client.CoreV1().Pods(ns).Create(ctx, bad, dry)
	wantStatus(t, err, 422)
	// dry-run update and delete change nothing
	got.Labels = map[string]string{"x": "y"}
	if _, err := env.Client.CoreV1().Services(ns).Update(ctx, got, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.CoreV1().Services(ns).Delete(ctx, "s", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	cur, err := env.Client.CoreV1().Services(ns).Get(ctx, "s", metav1.GetOptions{})
	if err != nil || cur.Labels["x"] != "" {
		t.Fatalf("dry-run update/delete changed the service: %v", err)
	}
}

func TestServiceDefaultsAndAllocation(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	ns := newNS(t, env)
	svcs := env.Client.CoreV1().Services(ns)
	s, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "np"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
		Selector: map[string]string{"app": "x"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := s.Spec.Ports[0]
	if p.Protocol != corev1.ProtocolTCP || p.TargetPort != intstr.FromInt32(80) || s.Spec.SessionAffinity != corev1.ServiceAffinityNone ||
		s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || *s.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster ||
		s.Spec.IPFamilies[0] != corev1.IPv4Protocol || *s.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack ||
		p.NodePort < 30000 || p.NodePort > 32767 || s.Spec.ClusterIP == "" || s.Spec.ClusterIPs[0] != s.Spec.ClusterIP {
		t.Fatalf("service defaults: %+v", s.Spec)
	}
	// 50 concurrent creates never share an IP
	var wg sync.WaitGroup
	ips := make([]string, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", i)}, Spec: corev1.ServiceSpec{
				Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
			errs[i] = err
			if err == nil {
				ips[i] = s.Spec.ClusterIP
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, ip := range ips {
		if errs[i] != nil {
			t.Fatalf("create c%d: %v", i, errs[i])
		}
		if seen[ip] || ip == "10.96.0.1" || ip == "10.96.0.10" || ip == s.Spec.ClusterIP {
			t.Fatalf("IP %s handed out twice or reserved", ip)
		}
		seen[ip] = true
	}
	// requested IP: taken, out of range, then honoured after release
	mk := func(name, ip string) (*corev1.Service, error) {
		return svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip,
			Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	}
	_, err = mk("taken", ips[0])
	se := wantStatus(t, err, 422)
	if len(se.ErrStatus.Details.Causes) == 0 || se.ErrStatus.Details.Causes[0].Field != "spec.clusterIPs[0]" {
		t.Fatalf("taken IP causes: %v", se.ErrStatus.Details.Causes)
	}
	_, err = mk("dns", "10.96.0.10")
	wantStatus(t, err, 422) // kube-dns holds it
	_, err = mk("far", "192.168.1.1")
	wantStatus(t, err, 422)
	if err := svcs.Delete(ctx, "c0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := mk("reuse", ips[0]); err != nil {
		t.Fatalf("released IP not reusable: %v", err)
	}
	// node port: taken and out of range
	np := func(name string, port int32) error {
		_, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
			Ports: []corev1.ServicePort{{Port: 80, NodePort: port}}}}, metav1.CreateOptions{})
		return err
	}
	wantStatus(t, np("nptaken", p.NodePort), 422)
	wantStatus(t, np("nprange", 20000), 422)
	// headless and ExternalName get no IP
	h, err := mk("headless", "None")
	if err != nil || h.Spec.ClusterIP != "None" {
		t.Fatalf("headless: %v", err)
	}
	en, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}, metav1.CreateOptions{})
	if err != nil || en.Spec.ClusterIP != "" {
		t.Fatalf("external name: %v %q", err, en.Spec.ClusterIP)
	}
	// type change NodePort -> ClusterIP releases the port; clusterIP is immutable
	s.Spec.Type = corev1.ServiceTypeClusterIP
	s.Spec.ExternalTrafficPolicy = ""
	s, err = svcs.Update(ctx, s, metav1.UpdateOptions{})
	if err != nil || s.Spec.Ports[0].NodePort != 0 {
		t.Fatalf("to ClusterIP: %v %+v", err, s.Spec.Ports)
	}
	if err := np("npreuse", p.NodePort); err != nil {
		t.Fatalf("released node port not reusable: %v", err)
	}
	s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.5.5", nil
	_, err = svcs.Update(ctx, s, metav1.UpdateOptions{})
	wantStatus(t, err, 422)
}

// TestRestartKeepsState restarts the server on the same data dir.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	env := testenv.StartWith(t, server.Config{DataDir: dir}, nil)
	ctx := context.Background()
	s, err := env.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "keep"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok := join(t, env, "n1").Token
	admin, join1 := env.Config.BearerToken, env.JoinToken
	env.Stop()

	env2 := testenv.StartWith(t, server.Config{DataDir: dir}, nil)
	if env2.Config.BearerToken != admin || env2.JoinToken != join1 {
		t.Fatal("tokens changed across restart")
	}
	got, err := env2.Client.CoreV1().Services("default").Get(ctx, "keep", metav1.GetOptions{})
	if err != nil || got.Spec.ClusterIP != s.Spec.ClusterIP {
		t.Fatalf("service lost: %v", err)
	}
	_, err = env2.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dup"},
		Spec: corev1.ServiceSpec{ClusterIP: s.Spec.ClusterIP, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	wantStatus(t, err, 422)
	_, err = env2.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dupport"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80, NodePort: s.Spec.Ports[0].NodePort}}}}, metav1.CreateOptions{})
	wantStatus(t, err, 422)
	if code, body := raw(t, env2, tok, "GET", "/api/v1/namespaces/default/pods", "", ""); code != 200 {
		t.Fatalf("node token after restart: %d %s", code, body)
	}
	kube, err := env2.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || kube.Spec.ClusterIP != "10.96.0.1" {
		t.Fatalf("kubernetes service: %v", err)
	}
	eps, err := env2.Client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || *eps.Ports[0].Port != int32(env2.Server.Port()) {
		t.Fatalf("kubernetes endpointslice not updated to the new port: %v", err)
	}
	dns, err := env2.Client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil || dns.Spec.ClusterIP != "10.96.0.10" || len(dns.Spec.Ports) != 2 {
		t.Fatalf("kube-dns: %v", err)
	}
}
