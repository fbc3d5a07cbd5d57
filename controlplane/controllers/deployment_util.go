package controllers

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

const (
	revisionAnnotation        = "deployment.kubernetes.io/revision"
	revisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	desiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	maxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	podTemplateHashLabel      = appsv1.DefaultDeploymentUniqueLabelKey

	defaultProgressDeadline = 600
)

// templateHash is a stable hash of the pod template (without the
// pod-template-hash label) plus the collision count, encoded like upstream's
// so names look familiar (deployment name + "-" + hash).
func templateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	cp := t.DeepCopy()
	delete(cp.Labels, podTemplateHashLabel)
	b, _ := json.Marshal(cp)
	h := fnv.New32a()
	h.Write(b)
	if collisionCount != nil {
		var buf [4]byte
		c := uint32(*collisionCount)
		buf[0], buf[1], buf[2], buf[3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
		h.Write(buf[:])
	}
	return utilrand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// equalIgnoreHash compares two templates ignoring the pod-template-hash label.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	x, y := a.DeepCopy(), b.DeepCopy()
	delete(x.Labels, podTemplateHashLabel)
	delete(y.Labels, podTemplateHashLabel)
	if len(x.Labels) == 0 {
		x.Labels = nil
	}
	if len(y.Labels) == 0 {
		y.Labels = nil
	}
	return apiequality.Semantic.DeepEqual(x, y)
}

func revisionOf(rs *appsv1.ReplicaSet) int64 {
	v, _ := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
	return v
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// fenceposts resolves maxSurge (rounded up) and maxUnavailable (rounded
// down); both zero would block the rollout, so unavailable becomes 1.
func fenceposts(d *appsv1.Deployment) (surge, unavailable int32) {
	replicas := int(replicasOf(d.Spec.Replicas))
	def := intstr.FromString("25%")
	ms, mu := &def, &def
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			ms = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			mu = ru.MaxUnavailable
		}
	}
	s, err := intstr.GetScaledValueFromIntOrPercent(ms, replicas, true)
	if err != nil {
		s = 0
	}
	u, err := intstr.GetScaledValueFromIntOrPercent(mu, replicas, false)
	if err != nil {
		u = 0
	}
	if s == 0 && u == 0 {
		u = 1
	}
	if u > replicas {
		u = replicas
	}
	return int32(s), int32(u)
}

func maxUnavailable(d *appsv1.Deployment) int32 {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || replicasOf(d.Spec.Replicas) == 0 {
		return 0
	}
	_, u := fenceposts(d)
	return u
}

func specReplicas(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += replicasOf(rs.Spec.Replicas)
		}
	}
	return n
}

// podCountUpperBound is how many pods the sets may have right now: a set
// scaled down keeps its pods until its controller deletes them (status lags
// spec), so take the larger of spec and status. Surge is computed from this
// so a rollout never exceeds replicas + maxSurge.
func podCountUpperBound(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += max(replicasOf(rs.Spec.Replicas), rs.Status.Replicas)
		}
	}
	return n
}

// availableLowerBound counts available pods that will stay: a set scaled
// down will delete pods, so count at most spec.replicas of its available ones.
func availableLowerBound(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += min(replicasOf(rs.Spec.Replicas), rs.Status.AvailableReplicas)
		}
	}
	return n
}

func sortByCreation(rss []*appsv1.ReplicaSet) {
	sort.SliceStable(rss, func(i, j int) bool {
		a, b := rss[i], rss[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

func getDeploymentCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setDeploymentCondition keeps lastTransitionTime when the status is unchanged.
func setDeploymentCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	cur := getDeploymentCondition(st, c.Type)
	if cur != nil && cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
		if c.Reason == "ReplicaSetUpdated" {
			cur.LastUpdateTime = c.LastUpdateTime
		}
		return
	}
	if cur != nil && cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	var out []appsv1.DeploymentCondition
	for _, x := range st.Conditions {
		if x.Type != c.Type {
			out = append(out, x)
		}
	}
	st.Conditions = append(out, c)
}
