package apiserver_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

func TestDeletionSemantics(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	ns := newNS(t, env)
	cms := env.Client.CoreV1().ConfigMaps(ns)
	// finalizers hold an object until they are removed
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fin", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "fin", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, "fin", metav1.GetOptions{})
	if err != nil || cm.DeletionTimestamp == nil {
		t.Fatalf("finalized object: %v", err)
	}
	if _, err := cms.Patch(ctx, "fin", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "fin", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("object with no finalizers left still there: %v", err)
	}
	// preconditions
	cm, _ = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pre"}}, metav1.CreateOptions{})
	bad := types.UID("nope")
	if err := cms.Delete(ctx, "pre", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &bad}}); !apierrors.IsConflict(err) {
		t.Fatalf("uid precondition: %v", err)
	}
	// propagation policy is recorded as a finalizer
	if err := cms.Delete(ctx, "pre", metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationForeground)}); err != nil {
		t.Fatal(err)
	}
	cm, _ = cms.Get(ctx, "pre", metav1.GetOptions{})
	if cm == nil || len(cm.Finalizers) != 1 || cm.Finalizers[0] != metav1.FinalizerDeleteDependents {
		t.Fatalf("foreground deletion not recorded: %+v", cm)
	}

	// pods: unbound ones go at once; bound ones get a deletionTimestamp until the agent's
	// grace-0 delete
	pods := env.Client.CoreV1().Pods(ns)
	pods.Create(ctx, pod("unbound"), metav1.CreateOptions{})
	if err := pods.Delete(ctx, "unbound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "unbound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unbound pod: %v", err)
	}
	p, _ := pods.Create(ctx, pod("bound"), metav1.CreateOptions{})
	if p.Status.Phase != corev1.PodPending || *p.Spec.TerminationGracePeriodSeconds != 30 || p.Spec.SchedulerName != "default-scheduler" ||
		p.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent || p.Spec.DNSPolicy != corev1.DNSClusterFirst {
		t.Fatalf("pod defaults: %+v", p)
	}
	bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "bound"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Bind(ctx, bind, metav1.CreateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("second binding: want 409, got %v", err)
	}
	if err := pods.Delete(ctx, "bound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err = pods.Get(ctx, "bound", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("graceful pod: %v %+v", err, p)
	}
	p.Status.Phase = corev1.PodRunning
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status of a terminating pod: %v", err)
	}
	if err := pods.Delete(ctx, "bound", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "bound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod after grace-0 delete: %v", err)
	}
	// pod spec is immutable except image
	p, _ = pods.Create(ctx, pod("immut"), metav1.CreateOptions{})
	p.Spec.Containers[0].Image = "busybox:1.37"
	if p, err = pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("image update: %v", err)
	}
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
	wantStatus(t, err, 422)

	// deletecollection with a selector
	for _, n := range []string{"a", "b"} {
		cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dc-" + n, Labels: map[string]string{"dc": "1"}}}, metav1.CreateOptions{})
	}
	if err := cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "dc=1"}); err != nil {
		t.Fatal(err)
	}
	if l, _ := cms.List(ctx, metav1.ListOptions{LabelSelector: "dc=1"}); len(l.Items) != 0 {
		t.Fatalf("deletecollection left %d", len(l.Items))
	}

	// a terminating namespace refuses new content (403), then goes once finalized
	if err := env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	nsObj, _ := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if nsObj.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("namespace phase %s", nsObj.Status.Phase)
	}
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
	wantStatus(t, err, 403)
}

func TestSelectors(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	ns := newNS(t, env)
	pods := env.Client.CoreV1().Pods(ns)
	for _, c := range []struct{ name, tier, node string }{{"a", "web", "n1"}, {"b", "db", "n1"}, {"c", "web", "n2"}, {"d", "", ""}} {
		p := pod(c.name)
		p.Labels = map[string]string{}
		if c.tier != "" {
			p.Labels["tier"] = c.tier
		}
		p.Spec.NodeName = c.node
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(opts metav1.ListOptions) int {
		t.Helper()
		l, err := pods.List(ctx, opts)
		if err != nil {
			t.Fatalf("list %+v: %v", opts, err)
		}
		return len(l.Items)
	}
	checks := []struct {
		opts metav1.ListOptions
		want int
	}{
		{metav1.ListOptions{LabelSelector: "tier=web"}, 2},
		{metav1.ListOptions{LabelSelector: "tier!=web"}, 2},
		{metav1.ListOptions{LabelSelector: "tier in (web,db)"}, 3},
		{metav1.ListOptions{LabelSelector: "!tier"}, 1},
		{metav1.ListOptions{FieldSelector: "spec.nodeName=n1"}, 2},
		{metav1.ListOptions{FieldSelector: "spec.nodeName="}, 1},
		{metav1.ListOptions{FieldSelector: "status.phase=Pending,spec.nodeName!=n1"}, 2},
		{metav1.ListOptions{LabelSelector: "tier=web", FieldSelector: "spec.nodeName=n2"}, 1},
		{metav1.ListOptions{FieldSelector: "metadata.name=a"}, 1},
	}
	for _, c := range checks {
		if got := count(c.opts); got != c.want {
			t.Errorf("%+v: %d pods, want %d", c.opts, got, c.want)
		}
	}
	_, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.bogus=1"})
	wantStatus(t, err, 400)
	_, err = pods.List(ctx, metav1.ListOptions{LabelSelector: "a in (("})
	wantStatus(t, err, 400)
	// paging
	l, err := pods.List(ctx, metav1.ListOptions{Limit: 3})
	if err != nil || len(l.Items) != 3 || l.Continue == "" {
		t.Fatalf("page 1: %v %d %q", err, len(l.Items), l.Continue)
	}
	l2, err := pods.List(ctx, metav1.ListOptions{Limit: 3, Continue: l.Continue})
	if err != nil || len(l2.Items) != 1 {
		t.Fatalf("page 2: %v", err)
	}
	// events by involvedObject, secrets by type
	env.Client.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "a", Namespace: ns}}, metav1.CreateOptions{})
	if el, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=a,involvedObject.kind=Pod"}); err != nil || len(el.Items) != 1 {
		t.Fatalf("events by involvedObject: %v", err)
	}
	env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{".dockerconfigjson": []byte("{}")}}, metav1.CreateOptions{})
	if sl, err := env.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: "type=kubernetes.io/dockerconfigjson"}); err != nil || len(sl.Items) != 1 {
		t.Fatalf("secrets by type: %v", err)
	}
}
