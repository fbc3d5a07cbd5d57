package controllers

import (
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
)

// setPodStatus writes a pod's status as its (simulated) agent would, retrying conflicts.
func (c *cluster) setPodStatus(ns, name string, mutate func(*corev1.PodStatus)) {
	c.t.Helper()
	for i := 0; ; i++ {
		p, err := c.client.CoreV1().Pods(ns).Get(c.ctx, name, metav1.GetOptions{})
		if err != nil {
			c.t.Fatal(err)
		}
		mutate(&p.Status)
		if _, err = c.client.CoreV1().Pods(ns).UpdateStatus(c.ctx, p, metav1.UpdateOptions{}); err == nil {
			return
		}
		if !apierrors.IsConflict(err) || i > 20 {
			c.t.Fatalf("status of pod %s: %v", name, err)
		}
	}
}

func runningStatus(ip string, ready bool, since time.Time) func(*corev1.PodStatus) {
	return func(st *corev1.PodStatus) {
		r := corev1.ConditionFalse
		if ready {
			r = corev1.ConditionTrue
		}
		st.Phase, st.PodIP, st.PodIPs = corev1.PodRunning, ip, []corev1.PodIP{{IP: ip}}
		st.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: r, LastTransitionTime: metav1.NewTime(since)}}
	}
}

// Scaling down deletes unscheduled pods first, then not-ready ones, then the ones ready
// for the shortest time, and keeps the long-ready ones.
func TestReplicaSetDeletePreference(t *testing.T) {
	c := newCluster(t, 1, 1)
	ns := "rsdel"
	c.createNamespace(ns)
	lbls := map[string]string{"app": "pick"}
	now := time.Now()
	// "ghost" has no agent, so the test alone decides these pods' status.
	c.makePod(ns, "old-1", lbls, "ghost", nil)
	c.makePod(ns, "old-2", lbls, "ghost", nil)
	c.makePod(ns, "young", lbls, "ghost", nil)
	c.makePod(ns, "notready", lbls, "ghost", nil)
	c.setPodStatus(ns, "old-1", runningStatus("10.9.0.1", true, now.Add(-time.Hour)))
	c.setPodStatus(ns, "old-2", runningStatus("10.9.0.2", true, now.Add(-time.Hour)))
	c.setPodStatus(ns, "young", runningStatus("10.9.0.3", true, now.Add(-time.Minute)))
	c.setPodStatus(ns, "notready", runningStatus("10.9.0.4", false, now.Add(-time.Hour)))
	unsched := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unscheduled", Namespace: ns, Labels: lbls},
		Spec: corev1.PodSpec{NodeSelector: map[string]string{"nowhere": "true"}, Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	if _, err := c.client.CoreV1().Pods(ns).Create(c.ctx, unsched, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "pick", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{Replicas: int32p(2), Selector: &metav1.LabelSelector{MatchLabels: lbls}, Template: podTemplate("pick", "x")}}
	if _, err := c.client.AppsV1().ReplicaSets(ns).Create(c.ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "scaled down to the two long-ready pods", func() (bool, error) {
		var names []string
		for _, p := range c.activePods(ns, "app=pick") {
			names = append(names, p.Name)
		}
		sort.Strings(names)
		got := strings.Join(names, ",")
		if len(names) == 2 && got != "old-1,old-2" {
			t.Fatalf("kept %s, want old-1,old-2", got)
		}
		return got == "old-1,old-2", nil
	})
	cur, err := c.client.AppsV1().ReplicaSets(ns).Get(c.ctx, "pick", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"old-1", "old-2"} {
		p, err := c.client.CoreV1().Pods(ns).Get(c.ctx, name, metav1.GetOptions{})
		if err != nil || metav1.GetControllerOf(p) == nil || metav1.GetControllerOf(p).UID != cur.UID {
			t.Errorf("pod %s not adopted by the replicaset (err %v)", name, err)
		}
	}
}

// availableReplicas counts a ready pod only minReadySeconds after it turned ready.
func TestReplicaSetMinReadySeconds(t *testing.T) {
	c := newCluster(t, 2, 1)
	ns := "minready"
	c.createNamespace(ns)
	const minReady = 5
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "slow", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{Replicas: int32p(2), MinReadySeconds: minReady,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "slow"}}, Template: podTemplate("slow", "x")}}

	// Every status the controller writes must not count a pod as available before its time.
	var mu sync.Mutex
	var violations []string
	sawWaiting := false
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(ns))
	pods := f.Core().V1().Pods().Informer()
	check := func(o any) {
		r, ok := o.(*appsv1.ReplicaSet)
		if !ok || r.Name != "slow" {
			return
		}
		now := time.Now()
		allowed := 0
		for _, x := range pods.GetStore().List() {
			p := x.(*corev1.Pod)
			if rc := podReadyCondition(p); rc != nil && rc.Status == corev1.ConditionTrue &&
				!now.Add(time.Second).Before(rc.LastTransitionTime.Add(minReady*time.Second)) {
				allowed++
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Status.AvailableReplicas > int32(allowed) {
			violations = append(violations, r.ResourceVersion)
		}
		if r.Status.ReadyReplicas == 2 && r.Status.AvailableReplicas < 2 {
			sawWaiting = true
		}
	}
	f.Apps().V1().ReplicaSets().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, n any) { check(n) }})
	f.Start(c.ctx.Done())
	f.WaitForCacheSync(c.ctx.Done())
	if _, err := c.client.AppsV1().ReplicaSets(ns).Create(c.ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "2 available", func() (bool, error) {
		cur, err := c.client.AppsV1().ReplicaSets(ns).Get(c.ctx, "slow", metav1.GetOptions{})
		return err == nil && cur.Status.AvailableReplicas == 2 && cur.Status.ReadyReplicas == 2, err
	})
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("availableReplicas counted pods ready for less than minReadySeconds (statuses at resourceVersions %v)", violations)
	}
	t.Logf("saw ready=2 available<2 while waiting: %v", sawWaiting)
}

// A ReplicationController (equality selector) adopts a matching orphan and releases a pod
// whose labels stop matching.
func TestReplicationControllerAdoptRelease(t *testing.T) {
	c := newCluster(t, 2, 1)
	ns := "rcadopt"
	c.createNamespace(ns)
	c.makePod(ns, "orphan", map[string]string{"app": "legacy"}, "", nil)
	tmpl := podTemplate("legacy", "nginx")
	rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: ns},
		Spec: corev1.ReplicationControllerSpec{Replicas: int32p(2), Selector: map[string]string{"app": "legacy"}, Template: &tmpl}}
	created, err := c.client.CoreV1().ReplicationControllers(ns).Create(c.ctx, rc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "orphan adopted, 2 ready", func() (bool, error) {
		p, err := c.client.CoreV1().Pods(ns).Get(c.ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ref := metav1.GetControllerOf(p)
		cur, _ := c.client.CoreV1().ReplicationControllers(ns).Get(c.ctx, "legacy", metav1.GetOptions{})
		return ref != nil && ref.UID == created.UID && ref.Kind == "ReplicationController" && cur.Status.ReadyReplicas == 2 &&
			len(c.activePods(ns, "app=legacy")) == 2, nil
	})
	p, _ := c.client.CoreV1().Pods(ns).Get(c.ctx, "orphan", metav1.GetOptions{})
	p.Labels = map[string]string{"app": "gone"}
	if _, err := c.client.CoreV1().Pods(ns).Update(c.ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "released and replaced", func() (bool, error) {
		p, err := c.client.CoreV1().Pods(ns).Get(c.ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return metav1.GetControllerOf(p) == nil && readyCount(c.activePods(ns, "app=legacy")) == 2, nil
	})
}
