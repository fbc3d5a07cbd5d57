package kubelet

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func runningCS(name string, ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func exitedCS(name string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

func waitingCS(name, reason string, lastExit *int32) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
	if lastExit != nil {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: *lastExit}
	}
	return cs
}

func TestPodPhase(t *testing.T) {
	one := int32(1)
	pod := func(policy corev1.RestartPolicy) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: policy}}
	}
	cases := []struct {
		name   string
		policy corev1.RestartPolicy
		init   []corev1.ContainerStatus
		app    []corev1.ContainerStatus
		want   corev1.PodPhase
	}{
		{"creating", corev1.RestartPolicyAlways, nil, []corev1.ContainerStatus{waitingCS("a", "ContainerCreating", nil)}, corev1.PodPending},
		{"running", corev1.RestartPolicyAlways, nil, []corev1.ContainerStatus{runningCS("a", true)}, corev1.PodRunning},
		{"one running one creating", corev1.RestartPolicyAlways, nil, []corev1.ContainerStatus{runningCS("a", true), waitingCS("b", "ContainerCreating", nil)}, corev1.PodPending},
		{"init running", corev1.RestartPolicyAlways, []corev1.ContainerStatus{runningCS("i", false)}, []corev1.ContainerStatus{waitingCS("a", "PodInitializing", nil)}, corev1.PodPending},
		{"init failed never", corev1.RestartPolicyNever, []corev1.ContainerStatus{exitedCS("i", 1)}, []corev1.ContainerStatus{waitingCS("a", "PodInitializing", nil)}, corev1.PodFailed},
		{"init failed always retries", corev1.RestartPolicyAlways, []corev1.ContainerStatus{exitedCS("i", 1)}, []corev1.ContainerStatus{waitingCS("a", "PodInitializing", nil)}, corev1.PodPending},
		{"crashloop", corev1.RestartPolicyAlways, nil, []corev1.ContainerStatus{waitingCS("a", "CrashLoopBackOff", &one)}, corev1.PodRunning},
		{"never failed", corev1.RestartPolicyNever, nil, []corev1.ContainerStatus{exitedCS("a", 3)}, corev1.PodFailed},
		{"never succeeded", corev1.RestartPolicyNever, nil, []corev1.ContainerStatus{exitedCS("a", 0), exitedCS("b", 0)}, corev1.PodSucceeded},
		{"never mixed", corev1.RestartPolicyNever, nil, []corev1.ContainerStatus{exitedCS("a", 0), exitedCS("b", 2)}, corev1.PodFailed},
		{"never one still running", corev1.RestartPolicyNever, nil, []corev1.ContainerStatus{exitedCS("a", 2), runningCS("b", true)}, corev1.PodRunning},
		{"onfailure succeeded", corev1.RestartPolicyOnFailure, nil, []corev1.ContainerStatus{exitedCS("a", 0)}, corev1.PodSucceeded},
		{"onfailure restarting", corev1.RestartPolicyOnFailure, nil, []corev1.ContainerStatus{waitingCS("a", "CrashLoopBackOff", &one)}, corev1.PodRunning},
		{"always exited", corev1.RestartPolicyAlways, nil, []corev1.ContainerStatus{exitedCS("a", 0)}, corev1.PodRunning},
	}
	for _, c := range cases {
		if got := podPhase(pod(c.policy), c.init, c.app); got != c.want {
			t.Errorf("%s: phase %s, want %s", c.name, got, c.want)
		}
	}
}

func cond(st corev1.PodStatus, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}

func TestBuildStatusConditions(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(1000, 0))
	t1 := metav1.NewTime(time.Unix(2000, 0))
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}}
	st := buildStatus(pod, statusInput{PodIP: "10.0.0.5", HostIP: "10.1.1.1", NetworkReady: true,
		App: []corev1.ContainerStatus{runningCS("a", true), runningCS("b", false)}}, t0)
	if cond(st, corev1.PodReady).Status != corev1.ConditionFalse || cond(st, corev1.ContainersReady).Status != corev1.ConditionFalse {
		t.Fatalf("ready with a not-ready container: %+v", st.Conditions)
	}
	if cond(st, corev1.PodInitialized).Status != corev1.ConditionTrue || cond(st, corev1.PodScheduled).Status != corev1.ConditionTrue {
		t.Fatalf("conditions %+v", st.Conditions)
	}
	if st.PodIP != "10.0.0.5" || st.PodIPs[0].IP != "10.0.0.5" || st.HostIP != "10.1.1.1" || st.StartTime == nil || st.QOSClass != corev1.PodQOSBestEffort {
		t.Fatalf("status %+v", st)
	}
	pod.Status = st
	// Readiness flips: only Ready's and ContainersReady's transition times move.
	st2 := buildStatus(pod, statusInput{PodIP: "10.0.0.5", NetworkReady: true, App: []corev1.ContainerStatus{runningCS("a", true), runningCS("b", true)}}, t1)
	if c := cond(st2, corev1.PodReady); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&t1) {
		t.Fatalf("ready: %+v", c)
	}
	if c := cond(st2, corev1.PodInitialized); !c.LastTransitionTime.Equal(&t0) {
		t.Fatalf("unchanged condition moved: %+v", c)
	}
	if !st2.StartTime.Equal(&t0) {
		t.Fatalf("start time moved")
	}
	// Readiness gates hold Ready back until another component sets them.
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
	st3 := buildStatus(pod, statusInput{NetworkReady: true, App: []corev1.ContainerStatus{runningCS("a", true), runningCS("b", true)}}, t1)
	if cond(st3, corev1.PodReady).Status != corev1.ConditionFalse || cond(st3, corev1.ContainersReady).Status != corev1.ConditionTrue {
		t.Fatalf("readiness gate ignored: %+v", st3.Conditions)
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: "example.com/lb", Status: corev1.ConditionTrue})
	st4 := buildStatus(pod, statusInput{NetworkReady: true, App: []corev1.ContainerStatus{runningCS("a", true), runningCS("b", true)}}, t1)
	if cond(st4, corev1.PodReady).Status != corev1.ConditionTrue || cond(st4, "example.com/lb") == nil {
		t.Fatalf("readiness gate set but not ready: %+v", st4.Conditions)
	}
	// A finished pod says PodCompleted.
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	st5 := buildStatus(pod, statusInput{App: []corev1.ContainerStatus{exitedCS("a", 0), exitedCS("b", 0)}}, t1)
	if st5.Phase != corev1.PodSucceeded || cond(st5, corev1.PodReady).Reason != "PodCompleted" {
		t.Fatalf("finished: %s %+v", st5.Phase, st5.Conditions)
	}
}

func TestBackoff(t *testing.T) {
	base, max := 10*time.Second, 5*time.Minute
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for n, w := range want {
		if got := backoff(n, base, max); got != w {
			t.Errorf("backoff(%d) = %s, want %s", n, got, w)
		}
	}
}

func TestContainerIDStable(t *testing.T) {
	a := containerID("uid-1", "web")
	if a != containerID("uid-1", "web") || a == containerID("uid-2", "web") || a == containerID("uid-1", "db") || len(a) > 76 {
		t.Fatalf("container id %q", a)
	}
}
