package controllers

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// revisionHistoryLimit keeps that many old ReplicaSets (scaled to 0), the newest ones.
func TestDeploymentRevisionHistoryLimit(t *testing.T) {
	c := newCluster(t, 2, 1)
	ns := "history"
	c.createNamespace(ns)
	d := newDeployment(ns, "web", 2, "img:v1")
	d.Spec.RevisionHistoryLimit = int32p(1)
	if _, err := c.client.AppsV1().Deployments(ns).Create(c.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.deploymentDone(ns, "web", 2, "img:v1")
	for _, img := range []string{"img:v2", "img:v3", "img:v4"} {
		c.setImage(ns, "web", img)
		c.deploymentDone(ns, "web", 2, img)
	}
	var rss []appsv1.ReplicaSet
	c.eventually(30*time.Second, "history trimmed to 1 old replicaset", func() (bool, error) {
		l, err := c.client.AppsV1().ReplicaSets(ns).List(c.ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		rss = l.Items
		return len(rss) == 2, nil
	})
	revs := map[string]string{}
	for _, rs := range rss {
		revs[rs.Spec.Template.Spec.Containers[0].Image] = rs.Annotations[revisionAnnotation]
		if rs.Spec.Template.Spec.Containers[0].Image == "img:v3" && *rs.Spec.Replicas != 0 {
			t.Errorf("old replicaset %s not scaled to 0", rs.Name)
		}
	}
	if revs["img:v4"] != "4" || revs["img:v3"] != "3" {
		t.Errorf("kept revisions %v, want img:v4 at 4 and img:v3 at 3", revs)
	}
}
