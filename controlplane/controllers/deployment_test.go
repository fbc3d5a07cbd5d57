package controllers

import (
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
)

func newDeployment(ns, name string, replicas int32, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: int32p(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, image)},
	}
}

// watcher counts the deployment's pods continuously from a watch (on every
// event, over the informer's store) and records the extremes a rollout may
// never cross.
type watcher struct {
	mu                 sync.Mutex
	minReady, maxTotal int
	armed              bool
}

func (c *cluster) watchPods(ns, app string) *watcher {
	w := &watcher{minReady: 1 << 30}
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	upd := func(any) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.armed {
			return
		}
		ready, total := 0, 0
		for _, o := range inf.GetStore().List() {
			p := o.(*corev1.Pod)
			if p.Labels["app"] != app || p.DeletionTimestamp != nil {
				continue
			}
			total++
			if isPodReady(p) {
				ready++
			}
		}
		w.minReady = min(w.minReady, ready)
		w.maxTotal = max(w.maxTotal, total)
	}
	inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: upd, UpdateFunc: func(_, n any) { upd(n) }, DeleteFunc: upd,
	})
	f.Start(c.ctx.Done())
	f.WaitForCacheSync(c.ctx.Done())
	return w
}

func (w *watcher) arm() {
	w.mu.Lock()
	w.armed = true
	w.mu.Unlock()
}

func (w *watcher) extremes() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.minReady, w.maxTotal
}

func (c *cluster) deploymentDone(ns, name string, replicas int32, image string) {
	c.t.Helper()
	c.eventually(60*time.Second, fmt.Sprintf("deployment %s complete with %s", name, image), func() (bool, error) {
		d, err := c.client.AppsV1().Deployments(ns).Get(c.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pods := c.activePods(ns, "app="+name)
		for _, p := range pods {
			if p.Spec.Containers[0].Image != image {
				return false, nil
			}
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == replicas &&
			d.Status.AvailableReplicas == replicas && d.Status.Replicas == replicas &&
			len(pods) == int(replicas) && readyCount(pods) == int(replicas), nil
	})
}

func (c *cluster) setImage(ns, name, image string) {
	c.t.Helper()
	c.updateDeployment(ns, name, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image })
}

// updateDeployment is get-mutate-update, retried on conflicts with the controller.
func (c *cluster) updateDeployment(ns, name string, mutate func(*appsv1.Deployment)) {
	c.t.Helper()
	var err error
	for i := 0; i < 20; i++ {
		var d *appsv1.Deployment
		if d, err = c.client.AppsV1().Deployments(ns).Get(c.ctx, name, metav1.GetOptions{}); err != nil {
			c.t.Fatal(err)
		}
		mutate(d)
		if _, err = c.client.AppsV1().Deployments(ns).Update(c.ctx, d, metav1.UpdateOptions{}); err == nil {
			return
		}
	}
	c.t.Fatalf("could not update deployment %s: %v", name, err)
}

func TestDeploymentRollingUpdateBounds(t *testing.T) {
	c := newCluster(t, 3, 1)
	ns := "roll"
	c.createNamespace(ns)
	d := newDeployment(ns, "web", 6, "img:v1")
	surge, unavail := intstr.FromInt32(2), intstr.FromInt32(1)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail}}
	if _, err := c.client.AppsV1().Deployments(ns).Create(c.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.deploymentDone(ns, "web", 6, "img:v1")
	w := c.watchPods(ns, "web")
	w.arm()
	for _, img := range []string{"img:v2", "img:v3"} {
		c.setImage(ns, "web", img)
		c.deploymentDone(ns, "web", 6, img)
	}
	minReady, maxTotal := w.extremes()
	t.Logf("during rollouts: min ready %d (floor 5), max pods %d (ceiling 8)", minReady, maxTotal)
	if minReady < 5 {
		t.Errorf("ready pods fell to %d, below replicas-maxUnavailable = 5", minReady)
	}
	if maxTotal > 8 {
		t.Errorf("pods rose to %d, above replicas+maxSurge = 8", maxTotal)
	}
	// Revisions and pod-template-hash naming.
	rss, _ := c.client.AppsV1().ReplicaSets(ns).List(c.ctx, metav1.ListOptions{})
	if len(rss.Items) != 3 {
		t.Fatalf("want 3 replicasets (one per revision), got %d", len(rss.Items))
	}
	cur, _ := c.client.AppsV1().Deployments(ns).Get(c.ctx, "web", metav1.GetOptions{})
	if cur.Annotations[revisionAnnotation] != "3" {
		t.Errorf("deployment revision = %q, want 3", cur.Annotations[revisionAnnotation])
	}
	for _, rs := range rss.Items {
		h := rs.Labels[podTemplateHashLabel]
		if h == "" || rs.Name != "web-"+h || rs.Spec.Selector.MatchLabels[podTemplateHashLabel] != h || rs.Spec.Template.Labels[podTemplateHashLabel] != h {
			t.Errorf("replicaset %s: bad pod-template-hash naming/labels", rs.Name)
		}
	}
	cond := getDeploymentCondition(&cur.Status, appsv1.DeploymentProgressing)
	if cond == nil || cond.Reason != "NewReplicaSetAvailable" || cond.Status != corev1.ConditionTrue {
		t.Errorf("Progressing condition = %+v, want True/NewReplicaSetAvailable", cond)
	}
}

func TestDeploymentRecreateRollbackPause(t *testing.T) {
	c := newCluster(t, 2, 1)
	ns := "recreate"
	c.createNamespace(ns)
	d := newDeployment(ns, "app", 3, "img:v1")
	d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	if _, err := c.client.AppsV1().Deployments(ns).Create(c.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.deploymentDone(ns, "app", 3, "img:v1")

	// Recreate: never old and new pods at once.
	mixed := false
	var mu sync.Mutex
	f := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	check := func(any) {
		imgs := map[string]bool{}
		for _, o := range inf.GetStore().List() {
			p := o.(*corev1.Pod)
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				imgs[p.Spec.Containers[0].Image] = true
			}
		}
		if len(imgs) > 1 {
			mu.Lock()
			mixed = true
			mu.Unlock()
		}
	}
	inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, n any) { check(n) }})
	f.Start(c.ctx.Done())
	f.WaitForCacheSync(c.ctx.Done())
	c.setImage(ns, "app", "img:v2")
	c.deploymentDone(ns, "app", 3, "img:v2")
	mu.Lock()
	if mixed {
		t.Error("Recreate ran old and new pods at the same time")
	}
	mu.Unlock()

	// Rollback the way `rollout undo` does: put the old RS's template back.
	rss, _ := c.client.AppsV1().ReplicaSets(ns).List(c.ctx, metav1.ListOptions{})
	var v1 *appsv1.ReplicaSet
	for i := range rss.Items {
		if rss.Items[i].Spec.Template.Spec.Containers[0].Image == "img:v1" {
			v1 = &rss.Items[i]
		}
	}
	if v1 == nil {
		t.Fatal("no v1 replicaset kept in history")
	}
	tmpl := v1.Spec.Template.DeepCopy()
	delete(tmpl.Labels, podTemplateHashLabel)
	c.updateDeployment(ns, "app", func(d *appsv1.Deployment) { d.Spec.Template = *tmpl })
	c.deploymentDone(ns, "app", 3, "img:v1")
	back, _ := c.client.AppsV1().ReplicaSets(ns).Get(c.ctx, v1.Name, metav1.GetOptions{})
	if back.Annotations[revisionAnnotation] != "3" || *back.Spec.Replicas != 3 {
		t.Errorf("rollback did not reuse %s with revision 3: revision %q replicas %d", v1.Name, back.Annotations[revisionAnnotation], *back.Spec.Replicas)
	}
	all, _ := c.client.AppsV1().ReplicaSets(ns).List(c.ctx, metav1.ListOptions{})
	if len(all.Items) != 2 {
		t.Errorf("rollback created a new replicaset: %d sets", len(all.Items))
	}

	// Pause: template changes do nothing; scaling still works; resume rolls out.
	c.updateDeployment(ns, "app", func(d *appsv1.Deployment) { d.Spec.Paused = true })
	c.eventually(20*time.Second, "paused condition", func() (bool, error) {
		d, err := c.client.AppsV1().Deployments(ns).Get(c.ctx, "app", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cond := getDeploymentCondition(&d.Status, appsv1.DeploymentProgressing)
		return cond != nil && cond.Reason == "DeploymentPaused", nil
	})
	c.setImage(ns, "app", "img:v9")
	var err error
	for i := 0; i < 20; i++ {
		sc, _ := c.client.AppsV1().Deployments(ns).GetScale(c.ctx, "app", metav1.GetOptions{})
		sc.Spec.Replicas = 4
		if _, err = c.client.AppsV1().Deployments(ns).UpdateScale(c.ctx, "app", sc, metav1.UpdateOptions{}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "paused deployment scaled", func() (bool, error) {
		pods := c.activePods(ns, "app=app")
		for _, p := range pods {
			if p.Spec.Containers[0].Image != "img:v1" {
				return false, fmt.Errorf("paused deployment rolled out %s", p.Spec.Containers[0].Image)
			}
		}
		return len(pods) == 4 && readyCount(pods) == 4, nil
	})
	c.updateDeployment(ns, "app", func(d *appsv1.Deployment) { d.Spec.Paused = false })
	c.deploymentDone(ns, "app", 4, "img:v9")
}

func TestDeploymentProgressDeadline(t *testing.T) {
	c := newCluster(t, 1, 1)
	ns := "deadline"
	c.createNamespace(ns)
	d := newDeployment(ns, "stuck", 2, "img:v1")
	d.Spec.ProgressDeadlineSeconds = int32p(2)
	// Asks for more memory than any node has: never progresses.
	d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = *resourceQ("64Gi")
	if _, err := c.client.AppsV1().Deployments(ns).Create(c.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "ProgressDeadlineExceeded", func() (bool, error) {
		d, err := c.client.AppsV1().Deployments(ns).Get(c.ctx, "stuck", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cond := getDeploymentCondition(&d.Status, appsv1.DeploymentProgressing)
		return cond != nil && cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded", nil
	})
}
