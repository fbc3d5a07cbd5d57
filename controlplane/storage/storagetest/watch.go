package storagetest

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/skiffnet/skiff/controlplane/storage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

func startWatch(t *testing.T, s storage.Interface, prefix string, opts storage.ListOptions) watch.Interface {
	t.Helper()
	w, err := s.Watch(ctxT(t), prefix, opts)
	if err != nil {
		t.Fatalf("watch %s: %v", prefix, err)
	}
	t.Cleanup(w.Stop)
	return w
}

// next returns the next event that is not a BOOKMARK.
func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed while waiting for an event")
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			return ev
		case <-deadline:
			t.Fatalf("no watch event within %v", eventTimeout)
		}
	}
}

// expect checks the next event's type, name and (when labelV is set) its "v" label.
func expect(t *testing.T, w watch.Interface, typ watch.EventType, name string) *corev1.Pod {
	t.Helper()
	ev := next(t, w)
	p, ok := ev.Object.(*corev1.Pod)
	if ev.Type != typ || !ok || p.Name != name {
		t.Fatalf("got event %s %T %v, want %s of pod %s", ev.Type, ev.Object, objName(ev.Object), typ, name)
	}
	return p
}

func objName(o any) string {
	if p, ok := o.(*corev1.Pod); ok {
		return p.Name
	}
	if st, ok := o.(*metav1.Status); ok {
		return st.Message
	}
	return ""
}

// waitClosed waits until the watch's channel is closed, draining events.
func waitClosed(t *testing.T, w watch.Interface) {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel not closed within %v", eventTimeout)
		}
	}
}

func testWatchFromRevision(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	a := createPod(t, s, newPod(ns, "a", nil))
	w := startWatch(t, s, podPrefix(ns), storage.ListOptions{ResourceVersion: a.ResourceVersion})

	upd := &corev1.Pod{}
	if err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), upd, nil, setLabel("v", "2")); err != nil {
		t.Fatal(err)
	}
	b := createPod(t, s, newPod(ns, "b", nil))
	del := &corev1.Pod{}
	if err := s.Delete(ctx, podKey(ns, "a"), del, nil); err != nil {
		t.Fatal(err)
	}
	// Changes outside the prefix are not seen.
	createPod(t, s, newPod(ns+"x", "a", nil))

	m := expect(t, w, watch.Modified, "a")
	if m.Labels["v"] != "2" || m.ResourceVersion != upd.ResourceVersion {
		t.Errorf("MODIFIED a: labels %v rv %s, want v=2 rv %s", m.Labels, m.ResourceVersion, upd.ResourceVersion)
	}
	if add := expect(t, w, watch.Added, "b"); add.ResourceVersion != b.ResourceVersion {
		t.Errorf("ADDED b rv %s, want %s", add.ResourceVersion, b.ResourceVersion)
	}
	d := expect(t, w, watch.Deleted, "a")
	if d.ResourceVersion != del.ResourceVersion || d.Labels["v"] != "2" {
		t.Errorf("DELETED a: rv %s labels %v; want the last state at the delete revision %s", d.ResourceVersion, d.Labels, del.ResourceVersion)
	}
	if d.Kind != "Pod" {
		t.Errorf("watch object kind %q, want Pod", d.Kind)
	}

	// Resuming from the MODIFIED revision replays only what came after it.
	w2 := startWatch(t, s, podPrefix(ns), storage.ListOptions{ResourceVersion: upd.ResourceVersion})
	expect(t, w2, watch.Added, "b")
	expect(t, w2, watch.Deleted, "a")
}

func testWatchInitialEvents(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	makePods(t, s, ns, 3)
	initial := []string{"p00", "p01", "p02"}
	for _, rv := range []string{"", "0"} {
		w := startWatch(t, s, podPrefix(ns), storage.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		var maxRV int64
		for _, name := range initial {
			p := expect(t, w, watch.Added, name)
			maxRV = max(maxRV, rvOf(t, p.ResourceVersion))
		}
		// The initial state ends with a bookmark carrying k8s.io/initial-events-end.
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*corev1.Pod)
			if ev.Type != watch.Bookmark || !ok || p.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
				t.Fatalf("rv %q: after the initial events got %s %T, want a BOOKMARK pod with %s", rv, ev.Type, ev.Object, metav1.InitialEventsAnnotationKey)
			}
			if rvOf(t, p.ResourceVersion) < maxRV {
				t.Errorf("initial-events-end bookmark at %s, before the last object's %d", p.ResourceVersion, maxRV)
			}
		case <-time.After(eventTimeout):
			t.Fatalf("no initial-events-end bookmark")
		}
		name := "q" + strconv.Itoa(len(rv))
		createPod(t, s, newPod(ns, name, nil))
		expect(t, w, watch.Added, name)
		initial = append(initial, name)
		w.Stop()
	}
	// With a predicate, only matching objects come as initial events.
	w := startWatch(t, s, podPrefix(ns), storage.ListOptions{Predicate: storage.Predicate{Label: labels.SelectorFromSet(labels.Set{"app": "b"})}})
	expect(t, w, watch.Added, "p01")
	createPod(t, s, newPod(ns, "marker", map[string]string{"app": "b"}))
	expect(t, w, watch.Added, "marker")
	_ = ctx
}

func testWatchSingleKey(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	a := createPod(t, s, newPod(ns, "a", nil))
	// "a" is a prefix of "ab": a single-key watch must not see it.
	w := startWatch(t, s, podKey(ns, "a"), storage.ListOptions{ResourceVersion: a.ResourceVersion})
	createPod(t, s, newPod(ns, "ab", nil))
	if err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), &corev1.Pod{}, nil, setLabel("v", "1")); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Modified, "a")
}

func testWatchCompacted(t *testing.T, s storage.Interface, ns string) {
	c, ok := s.(Compacter)
	if !ok {
		t.Skipf("%T cannot compact", s)
	}
	ctx := ctxT(t)
	first := createPod(t, s, newPod(ns, "a", nil))
	makePods(t, s, ns, 4)
	var page corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{Limit: 2}, &page); err != nil {
		t.Fatal(err)
	}
	last := &corev1.Pod{}
	for i := range 3 {
		if err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), last, nil, setLabel("v", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Compact(ctx, rvOf(t, last.ResourceVersion)); err != nil {
		t.Fatalf("compact: %v", err)
	}

	w, err := s.Watch(ctx, podPrefix(ns), storage.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatalf("watch from a compacted revision must not fail synchronously: %v", err)
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		st, isStatus := ev.Object.(*metav1.Status)
		if !ok || ev.Type != watch.Error || !isStatus || st.Code != http.StatusGone || st.Reason != metav1.StatusReasonExpired {
			t.Fatalf("watch from compacted revision: got %v %s %#v, want ERROR with Status 410 Expired", ok, ev.Type, ev.Object)
		}
	case <-time.After(eventTimeout):
		t.Fatalf("no error event for a compacted revision")
	}
	waitClosed(t, w)

	var l corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{ResourceVersion: first.ResourceVersion}, &l); !storage.IsGone(err) {
		t.Errorf("list at compacted revision: got %v, want IsGone", err)
	}
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{Limit: 2, Continue: page.Continue}, &l); !storage.IsGone(err) {
		t.Errorf("list with a continue token from before the compaction: got %v, want IsGone", err)
	}
	// The compaction revision itself is still a valid starting point.
	w2 := startWatch(t, s, podPrefix(ns), storage.ListOptions{ResourceVersion: last.ResourceVersion})
	createPod(t, s, newPod(ns, "after", nil))
	expect(t, w2, watch.Added, "after")
}

func testWatchPredicateTransitions(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	a := createPod(t, s, newPod(ns, "a", map[string]string{"app": "other"}))
	sel := storage.Predicate{Label: labels.SelectorFromSet(labels.Set{"app": "x"})}
	w := startWatch(t, s, podPrefix(ns), storage.ListOptions{ResourceVersion: a.ResourceVersion, Predicate: sel})

	update := func(app string) *corev1.Pod {
		out := &corev1.Pod{}
		if err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), out, nil, setLabel("app", app)); err != nil {
			t.Fatal(err)
		}
		return out
	}
	createPod(t, s, newPod(ns, "hidden", map[string]string{"app": "other"})) // not seen
	toX := update("x")
	if p := expect(t, w, watch.Added, "a"); p.ResourceVersion != toX.ResourceVersion {
		t.Errorf("ADDED on starting to match: rv %s, want %s", p.ResourceVersion, toX.ResourceVersion)
	}
	if err := s.GuaranteedUpdate(ctx, podKey(ns, "a"), &corev1.Pod{}, nil, setLabel("v", "1")); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Modified, "a")
	away := update("gone")
	d := expect(t, w, watch.Deleted, "a")
	if d.ResourceVersion != away.ResourceVersion || d.Labels["app"] != "x" {
		t.Errorf("DELETED on stopping to match: rv %s labels %v; want the old state (app=x) at rv %s", d.ResourceVersion, d.Labels, away.ResourceVersion)
	}
	if err := s.Delete(ctx, podKey(ns, "hidden"), &corev1.Pod{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, podKey(ns, "a"), &corev1.Pod{}, nil); err != nil { // no longer matching: not seen
		t.Fatal(err)
	}
	createPod(t, s, newPod(ns, "marker", map[string]string{"app": "x"}))
	expect(t, w, watch.Added, "marker")
}

func testWatchBookmarks(t *testing.T, s storage.Interface, ns string) {
	a := createPod(t, s, newPod(ns, "a", nil))
	w := startWatch(t, s, podPrefix(ns), storage.ListOptions{ResourceVersion: a.ResourceVersion, AllowWatchBookmarks: true})
	// A write outside the watched prefix moves etcd's revision; the bookmark reports it.
	other := createPod(t, s, newPod(ns+"x", "elsewhere", nil))
	deadline := time.After(eventTimeout + 10*storage.BookmarkInterval)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			if ev.Type != watch.Bookmark {
				t.Fatalf("unexpected %s event %v", ev.Type, objName(ev.Object))
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				t.Fatalf("bookmark object is %T, want *v1.Pod", ev.Object)
			}
			if p.Name != "" {
				t.Errorf("bookmark object has name %q, want only a resourceVersion", p.Name)
			}
			if rvOf(t, p.ResourceVersion) >= rvOf(t, other.ResourceVersion) {
				return
			}
		case <-deadline:
			t.Fatalf("no bookmark at or after revision %s", other.ResourceVersion)
		}
	}
}

func testWatchStop(t *testing.T, s storage.Interface, ns string) {
	a := createPod(t, s, newPod(ns, "a", nil))
	// Let goroutines from earlier tests settle before taking the baseline.
	settle := func() int {
		prev := -1
		for range 50 {
			n := runtime.NumGoroutine()
			if n == prev {
				return n
			}
			prev = n
			time.Sleep(20 * time.Millisecond)
		}
		return prev
	}
	base := settle()
	var ws []watch.Interface
	for i := range 20 {
		w, err := s.Watch(ctxT(t), podPrefix(ns), storage.ListOptions{ResourceVersion: a.ResourceVersion, AllowWatchBookmarks: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	createPod(t, s, newPod(ns, "b", nil))
	for _, w := range ws {
		expect(t, w, watch.Added, "b")
	}
	for _, w := range ws {
		w.Stop()
		w.Stop() // twice is fine
		waitClosed(t, w)
	}
	deadline := time.Now().Add(eventTimeout)
	for {
		n := runtime.NumGoroutine()
		if n <= base+2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after stopping 20 watches, %d before", n, base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testWatchContextCancel(t *testing.T, s storage.Interface, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := s.Watch(ctx, podPrefix(ns), storage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cancel()
	waitClosed(t, w)
}

func testCreateTTL(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	keep := createPod(t, s, newPod(ns, "keep", nil))
	w := startWatch(t, s, podPrefix(ns), storage.ListOptions{ResourceVersion: keep.ResourceVersion})
	for _, name := range []string{"ev1", "ev2"} {
		if err := s.Create(ctx, podKey(ns, name), newPod(ns, name, nil), &corev1.Pod{}, 1); err != nil {
			t.Fatalf("create with ttl: %v", err)
		}
	}
	// An update keeps the object's lease.
	if err := s.GuaranteedUpdate(ctx, podKey(ns, "ev1"), &corev1.Pod{}, nil, setLabel("v", "1")); err != nil {
		t.Fatal(err)
	}
	expect(t, w, watch.Added, "ev1")
	expect(t, w, watch.Added, "ev2")
	expect(t, w, watch.Modified, "ev1")
	// etcd expires leases on its own clock (at least 1 s, more on slow members): poll.
	deleted := map[string]bool{}
	for len(deleted) < 2 {
		ev := next(t, w)
		p, _ := ev.Object.(*corev1.Pod)
		if ev.Type != watch.Deleted || p == nil {
			t.Fatalf("got %s %v, want the TTL objects DELETED", ev.Type, objName(ev.Object))
		}
		deleted[p.Name] = true
	}
	if err := s.Get(ctx, podKey(ns, "ev1"), &corev1.Pod{}); !storage.IsNotFound(err) {
		t.Errorf("ttl object after expiry: %v, want IsNotFound", err)
	}
	if err := s.Get(ctx, podKey(ns, "keep"), &corev1.Pod{}); err != nil {
		t.Errorf("object without ttl: %v", err)
	}
}
