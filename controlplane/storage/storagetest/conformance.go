// Package storagetest is the conformance suite of storage.Interface. It runs against any
// implementation (embedded etcd, an external etcd cluster) through a constructor.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/skiffnet/skiff/controlplane/storage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// NewFunc returns the Interface a subtest runs against. Subtests use keys under their own
// random namespace, so one etcd may serve them all.
type NewFunc func(t *testing.T) storage.Interface

// Compacter is implemented by stores that can compact etcd history (the etcd3 store does);
// the compaction tests are skipped for others.
type Compacter interface {
	Compact(ctx context.Context, rev int64) error
}

// RunConformance runs every conformance test against the stores newStore returns.
func RunConformance(t *testing.T, newStore NewFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Interface, ns string)
	}{
		{"CreateGet", testCreateGet},
		{"Count", testCount},
		{"BadInput", testBadInput},
		{"Update", testUpdate},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"Preconditions", testPreconditions},
		{"Delete", testDelete},
		{"DeleteConcurrentWithUpdate", testDeleteConcurrentWithUpdate},
		{"ListSelectors", testListSelectors},
		{"ListPagination", testListPagination},
		{"ListAtRevision", testListAtRevision},
		{"WatchFromRevision", testWatchFromRevision},
		{"WatchInitialEvents", testWatchInitialEvents},
		{"WatchSingleKey", testWatchSingleKey},
		{"WatchCompacted", testWatchCompacted},
		{"WatchPredicateTransitions", testWatchPredicateTransitions},
		{"WatchBookmarks", testWatchBookmarks},
		{"WatchStop", testWatchStop},
		{"WatchContextCancel", testWatchContextCancel},
		{"CreateTTL", testCreateTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.fn(t, s, "ns-"+randHex(4))
		})
	}
}

// Timeouts are deadlines for conditions, not measurements.
const eventTimeout = 15 * time.Second

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func podKey(ns, name string) string { return "/registry/pods/" + ns + "/" + name }
func podPrefix(ns string) string    { return "/registry/pods/" + ns + "/" }

func newPod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func createPod(t *testing.T, s storage.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	out := &corev1.Pod{}
	if err := s.Create(ctxT(t), podKey(p.Namespace, p.Name), p, out, 0); err != nil {
		t.Fatalf("create %s/%s: %v", p.Namespace, p.Name, err)
	}
	return out
}

func rvOf(t *testing.T, rv string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("resourceVersion %q is not a positive integer", rv)
	}
	return n
}

func setLabel(key, value string) storage.UpdateFunc {
	return func(cur runtime.Object) (runtime.Object, error) {
		p := cur.(*corev1.Pod)
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[key] = value
		return p, nil
	}
}

func testCreateGet(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	in := newPod(ns, "a", map[string]string{"app": "web"})
	out := createPod(t, s, in)
	if out.ResourceVersion == "" || out.Name != "a" || out.Labels["app"] != "web" {
		t.Fatalf("create returned %+v", out.ObjectMeta)
	}
	if in.ResourceVersion != "" {
		t.Errorf("Create changed the caller's object: resourceVersion %q", in.ResourceVersion)
	}
	if out.Kind != "Pod" || out.APIVersion != "v1" {
		t.Errorf("created object has kind %q apiVersion %q, want Pod v1", out.Kind, out.APIVersion)
	}
	got := &corev1.Pod{}
	if err := s.Get(ctx, podKey(ns, "a"), got); err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.ResourceVersion != out.ResourceVersion || got.UID != "uid-a" || len(got.Spec.Containers) != 1 {
		t.Fatalf("get returned %+v, want resourceVersion %s", got.ObjectMeta, out.ResourceVersion)
	}

	// Get resets the target: fields from a previous object must not survive.
	stale := newPod(ns, "stale", map[string]string{"stale": "yes"})
	stale.Spec.NodeName = "old-node"
	if err := s.Get(ctx, podKey(ns, "a"), stale); err != nil {
		t.Fatalf("get into used object: %v", err)
	}
	if stale.Labels["stale"] != "" || stale.Spec.NodeName != "" {
		t.Errorf("Get kept stale fields: labels %v nodeName %q", stale.Labels, stale.Spec.NodeName)
	}

	err := s.Create(ctx, podKey(ns, "a"), newPod(ns, "a", nil), &corev1.Pod{}, 0)
	if !storage.IsExists(err) {
		t.Fatalf("second create: got %v, want IsExists", err)
	}
	if err := s.Get(ctx, podKey(ns, "missing"), &corev1.Pod{}); !storage.IsNotFound(err) {
		t.Fatalf("get missing: got %v, want IsNotFound", err)
	}
	// A resourceVersion on the input is not stored: the revision lives in etcd.
	withRV := newPod(ns, "b", nil)
	withRV.ResourceVersion = "12345"
	outB := createPod(t, s, withRV)
	if outB.ResourceVersion == "12345" || withRV.ResourceVersion != "12345" {
		t.Errorf("create with resourceVersion: stored %q, input now %q", outB.ResourceVersion, withRV.ResourceVersion)
	}
	// The wrong output type is an invalid-object error, not a silently empty object.
	if err := s.Get(ctx, podKey(ns, "a"), &corev1.Service{}); !storage.IsInvalidObj(err) {
		t.Errorf("get pod into Service: got %v, want IsInvalidObj", err)
	}
	// Create with a nil out is allowed.
	if err := s.Create(ctx, podKey(ns, "c"), newPod(ns, "c", nil), nil, 0); err != nil {
		t.Errorf("create with nil out: %v", err)
	}
}

func testCount(t *testing.T, s storage.Interface, ns string) {
	for i := range 5 {
		createPod(t, s, newPod(ns, fmt.Sprintf("p%d", i), nil))
	}
	n, err := s.Count(ctxT(t), podPrefix(ns))
	if err != nil || n != 5 {
		t.Fatalf("count = %d, %v; want 5", n, err)
	}
}

func testBadInput(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	for _, key := range []string{"", "registry/pods/x", podPrefix(ns)} {
		if err := s.Create(ctx, key, newPod(ns, "x", nil), &corev1.Pod{}, 0); err == nil {
			t.Errorf("create at key %q succeeded, want an error", key)
		}
	}
	if n, _ := s.Count(ctx, podPrefix(ns)); n != 0 {
		t.Errorf("bad creates stored %d objects", n)
	}
	var l corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{ResourceVersion: "abc"}, &l); !storage.IsBadRequest(err) {
		t.Errorf("list with resourceVersion abc: got %v, want IsBadRequest", err)
	}
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{Limit: 1, Continue: "garbage!"}, &l); !storage.IsBadRequest(err) {
		t.Errorf("list with bad continue: got %v, want IsBadRequest", err)
	}
	if _, err := s.Watch(ctx, podPrefix(ns), storage.ListOptions{ResourceVersion: "-3"}); !storage.IsBadRequest(err) {
		t.Errorf("watch with resourceVersion -3: got %v, want IsBadRequest", err)
	}
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{ResourceVersion: "999999999999"}, &l); !storage.IsTooLargeResourceVersion(err) {
		t.Errorf("list at a future revision: got %v, want IsTooLargeResourceVersion", err)
	}
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{}, &corev1.Pod{}); !storage.IsInvalidObj(err) {
		t.Errorf("list into a non-list: got %v, want IsInvalidObj", err)
	}
}

func testUpdate(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	created := createPod(t, s, newPod(ns, "a", nil))
	out := &corev1.Pod{}
	if err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), out, nil, setLabel("v", "1")); err != nil {
		t.Fatalf("update: %v", err)
	}
	if out.Labels["v"] != "1" || rvOf(t, out.ResourceVersion) <= rvOf(t, created.ResourceVersion) {
		t.Fatalf("update returned labels %v rv %s (created at %s)", out.Labels, out.ResourceVersion, created.ResourceVersion)
	}
	got := &corev1.Pod{}
	if err := s.Get(ctx, podKey(ns, "a"), got); err != nil || got.ResourceVersion != out.ResourceVersion || got.Labels["v"] != "1" {
		t.Fatalf("get after update: %+v, %v", got.ObjectMeta, err)
	}

	// An update that changes nothing writes nothing.
	same := &corev1.Pod{}
	if err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), same, nil, setLabel("v", "1")); err != nil {
		t.Fatalf("no-op update: %v", err)
	}
	if same.ResourceVersion != out.ResourceVersion {
		t.Errorf("no-op update moved resourceVersion %s -> %s", out.ResourceVersion, same.ResourceVersion)
	}

	// tryUpdate's error aborts the update.
	boom := fmt.Errorf("validation failed")
	err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), &corev1.Pod{}, nil, func(cur runtime.Object) (runtime.Object, error) {
		return nil, boom
	})
	if err != boom {
		t.Errorf("update whose tryUpdate fails: got %v, want the tryUpdate error", err)
	}
	if err := s.Get(ctx, podKey(ns, "a"), got); err != nil || got.ResourceVersion != out.ResourceVersion {
		t.Errorf("failed update changed the object: rv %s, %v", got.ResourceVersion, err)
	}

	// A missing key: IsNotFound, and tryUpdate is never called.
	called := false
	err = s.GuaranteedUpdate(ctx, podKey(ns, "missing"), &corev1.Pod{}, nil, func(cur runtime.Object) (runtime.Object, error) {
		called = true
		return cur, nil
	})
	if !storage.IsNotFound(err) || called {
		t.Errorf("update of missing key: err %v, tryUpdate called %v; want IsNotFound and not called", err, called)
	}
}

func testUpdateConcurrent(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	createPod(t, s, newPod(ns, "counter", nil))
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.GuaranteedUpdate(ctx, podKey(ns, "counter"), &corev1.Pod{}, nil, func(cur runtime.Object) (runtime.Object, error) {
				p := cur.(*corev1.Pod)
				n, _ := strconv.Atoi(p.Annotations["count"])
				if p.Annotations == nil {
					p.Annotations = map[string]string{}
				}
				p.Annotations["count"] = strconv.Itoa(n + 1)
				return p, nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent update: %v", err)
		}
	}
	got := &corev1.Pod{}
	if err := s.Get(ctx, podKey(ns, "counter"), got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations["count"] != strconv.Itoa(writers) {
		t.Fatalf("after %d concurrent increments the counter is %q", writers, got.Annotations["count"])
	}
}

func testPreconditions(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	created := createPod(t, s, newPod(ns, "a", nil))
	wrongUID := types.UID("other")
	rightUID := created.UID
	stale := "1"
	cases := []struct {
		name string
		pre  *storage.Preconditions
	}{
		{"uid", &storage.Preconditions{UID: &wrongUID}},
		{"resourceVersion", &storage.Preconditions{ResourceVersion: &stale}},
		{"uid ok, resourceVersion stale", &storage.Preconditions{UID: &rightUID, ResourceVersion: &stale}},
	}
	for _, c := range cases {
		err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), &corev1.Pod{}, c.pre, setLabel("x", "y"))
		if !storage.IsConflict(err) {
			t.Errorf("update with wrong %s precondition: got %v, want IsConflict", c.name, err)
		}
		err = s.Delete(ctx, podKey(ns, "a"), &corev1.Pod{}, c.pre)
		if !storage.IsConflict(err) {
			t.Errorf("delete with wrong %s precondition: got %v, want IsConflict", c.name, err)
		}
	}
	got := &corev1.Pod{}
	if err := s.Get(ctx, podKey(ns, "a"), got); err != nil || got.ResourceVersion != created.ResourceVersion {
		t.Fatalf("failed preconditions changed the object: %v rv %s", err, got.ResourceVersion)
	}
	rv := created.ResourceVersion
	out := &corev1.Pod{}
	if err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), out, &storage.Preconditions{UID: &rightUID, ResourceVersion: &rv}, setLabel("x", "y")); err != nil {
		t.Fatalf("update with matching preconditions: %v", err)
	}
	if err := s.Delete(ctx, podKey(ns, "a"), &corev1.Pod{}, &storage.Preconditions{ResourceVersion: &rv}); !storage.IsConflict(err) {
		t.Fatalf("delete with the pre-update resourceVersion: got %v, want IsConflict", err)
	}
	newRV := out.ResourceVersion
	if err := s.Delete(ctx, podKey(ns, "a"), &corev1.Pod{}, &storage.Preconditions{UID: &rightUID, ResourceVersion: &newRV}); err != nil {
		t.Fatalf("delete with matching preconditions: %v", err)
	}
}

func testDelete(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	created := createPod(t, s, newPod(ns, "a", map[string]string{"k": "v"}))
	out := &corev1.Pod{}
	if err := s.Delete(ctx, podKey(ns, "a"), out, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if out.Name != "a" || out.Labels["k"] != "v" || rvOf(t, out.ResourceVersion) <= rvOf(t, created.ResourceVersion) {
		t.Errorf("delete returned %+v; want the last state with the delete's revision", out.ObjectMeta)
	}
	if err := s.Get(ctx, podKey(ns, "a"), &corev1.Pod{}); !storage.IsNotFound(err) {
		t.Errorf("get after delete: got %v, want IsNotFound", err)
	}
	if err := s.Delete(ctx, podKey(ns, "a"), &corev1.Pod{}, nil); !storage.IsNotFound(err) {
		t.Errorf("second delete: got %v, want IsNotFound", err)
	}
	// The key can be created again.
	createPod(t, s, newPod(ns, "a", nil))
}

// A delete racing with updates retries on the fresh state and removes the object.
func testDeleteConcurrentWithUpdate(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	createPod(t, s, newPod(ns, "a", nil))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), &corev1.Pod{}, nil, setLabel("i", strconv.Itoa(i)))
			if storage.IsNotFound(err) {
				return
			}
			if err != nil {
				t.Errorf("update: %v", err)
				return
			}
		}
	}()
	if err := s.Delete(ctx, podKey(ns, "a"), &corev1.Pod{}, nil); err != nil {
		t.Errorf("delete while updating: %v", err)
	}
	close(stop)
	wg.Wait()
	if err := s.Get(ctx, podKey(ns, "a"), &corev1.Pod{}); !storage.IsNotFound(err) {
		t.Errorf("after delete: %v, want IsNotFound", err)
	}
}
