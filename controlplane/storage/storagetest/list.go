package storagetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/skiffnet/skiff/controlplane/storage"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// podAttrs is the registry's attribute function for pods: labels plus the selectable fields.
func podAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil, fmt.Errorf("not a pod: %T", obj)
	}
	return labels.Set(p.Labels), fields.Set{
		"metadata.name":      p.Name,
		"metadata.namespace": p.Namespace,
		"spec.nodeName":      p.Spec.NodeName,
		"status.phase":       string(p.Status.Phase),
	}, nil
}

func names(l *corev1.PodList) []string {
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Name)
	}
	return out
}

// makePods creates p00..p{n-1}: app=a for even, app=b for odd; node n1 for i%3==0.
func makePods(t *testing.T, s storage.Interface, ns string, n int) {
	for i := range n {
		p := newPod(ns, fmt.Sprintf("p%02d", i), map[string]string{"app": map[bool]string{true: "a", false: "b"}[i%2 == 0]})
		if i%3 == 0 {
			p.Spec.NodeName = "n1"
		}
		createPod(t, s, p)
	}
}

func testListSelectors(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	makePods(t, s, ns, 10)
	// A pod in another namespace must not leak into this namespace's list.
	createPod(t, s, newPod(ns+"x", "other", map[string]string{"app": "a"}))

	var all corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{}, &all); err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(all.Items) != 10 {
		t.Fatalf("list returned %d items %v, want 10", len(all.Items), names(&all))
	}
	if !slices.IsSorted(names(&all)) {
		t.Errorf("list is not in key order: %v", names(&all))
	}
	listRV := rvOf(t, all.ResourceVersion)
	for _, p := range all.Items {
		if rv := rvOf(t, p.ResourceVersion); rv > listRV {
			t.Errorf("item %s has resourceVersion %d above the list's %d", p.Name, rv, listRV)
		}
	}

	cases := []struct {
		name string
		pred storage.Predicate
		want []string
	}{
		{"app=a", storage.Predicate{Label: labels.SelectorFromSet(labels.Set{"app": "a"})},
			[]string{"p00", "p02", "p04", "p06", "p08"}},
		{"app in (b), nodeName=n1", storage.Predicate{
			Label:    mustSelector(t, "app in (b)"),
			Field:    fields.OneTermEqualSelector("spec.nodeName", "n1"),
			GetAttrs: podAttrs}, []string{"p03", "p09"}},
		{"nodeName!=n1", storage.Predicate{Field: fields.OneTermNotEqualSelector("spec.nodeName", "n1"), GetAttrs: podAttrs},
			[]string{"p01", "p02", "p04", "p05", "p07", "p08"}},
		// Without GetAttrs, metadata.name and metadata.namespace still work.
		{"metadata.name=p05", storage.Predicate{Field: fields.OneTermEqualSelector("metadata.name", "p05")}, []string{"p05"}},
		{"no match", storage.Predicate{Label: labels.SelectorFromSet(labels.Set{"app": "zzz"})}, nil},
	}
	for _, c := range cases {
		var l corev1.PodList
		if err := s.List(ctx, podPrefix(ns), storage.ListOptions{Predicate: c.pred}, &l); err != nil {
			t.Errorf("list %s: %v", c.name, err)
			continue
		}
		if !slices.Equal(names(&l), c.want) {
			t.Errorf("list %s = %v, want %v", c.name, names(&l), c.want)
		}
		// Paging through a filtered list gives the same items, one page at a time.
		var paged []string
		opts := storage.ListOptions{Predicate: c.pred, Limit: 2}
		for range 20 {
			var page corev1.PodList
			if err := s.List(ctx, podPrefix(ns), opts, &page); err != nil {
				t.Fatalf("paged list %s: %v", c.name, err)
			}
			if len(page.Items) > 2 {
				t.Errorf("paged list %s returned %d items with limit 2", c.name, len(page.Items))
			}
			paged = append(paged, names(&page)...)
			if page.Continue == "" {
				break
			}
			opts.Continue = page.Continue
		}
		if !slices.Equal(paged, c.want) {
			t.Errorf("paged list %s = %v, want %v", c.name, paged, c.want)
		}
	}

	// A key without a trailing / lists just that object.
	var one corev1.PodList
	if err := s.List(ctx, podKey(ns, "p03"), storage.ListOptions{}, &one); err != nil || !slices.Equal(names(&one), []string{"p03"}) {
		t.Errorf("list of a single key = %v, %v", names(&one), err)
	}
}

func mustSelector(t *testing.T, s string) labels.Selector {
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatalf("parse selector %q: %v", s, err)
	}
	return sel
}

func testListPagination(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	makePods(t, s, ns, 10)
	var got []string
	opts := storage.ListOptions{Limit: 3}
	var firstRV string
	sizes := []int{}
	for page := 0; ; page++ {
		var l corev1.PodList
		if err := s.List(ctx, podPrefix(ns), opts, &l); err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		sizes = append(sizes, len(l.Items))
		got = append(got, names(&l)...)
		if page == 0 {
			firstRV = l.ResourceVersion
			if l.RemainingItemCount == nil || *l.RemainingItemCount != 7 {
				t.Errorf("first page remainingItemCount = %v, want 7", l.RemainingItemCount)
			}
			// Writes after the first page are not seen by later pages: one snapshot.
			createPod(t, s, newPod(ns, "p05a", nil))
			if err := s.Delete(ctx, podKey(ns, "p09"), &corev1.Pod{}, nil); err != nil {
				t.Fatal(err)
			}
		} else if l.ResourceVersion != firstRV {
			t.Errorf("page %d read at %s, the first page at %s", page, l.ResourceVersion, firstRV)
		}
		if l.Continue == "" {
			break
		}
		if page > 10 {
			t.Fatalf("pagination does not end: %v", got)
		}
		opts.Continue = l.Continue
	}
	want := []string{"p00", "p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "p09"}
	if !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 3, 1}) {
		t.Errorf("pages %v gave %v, want 3,3,3,1 of %v", sizes, got, want)
	}
	// Limit equal to the count: no continue token.
	var l corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{Limit: 10}, &l); err != nil || len(l.Items) != 10 || l.Continue != "" {
		t.Errorf("list with limit = count: %d items, continue %q, %v", len(l.Items), l.Continue, err)
	}
	// A continue token together with a different resourceVersion is refused.
	var p1 corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{Limit: 2}, &p1); err != nil {
		t.Fatal(err)
	}
	err := s.List(ctx, podPrefix(ns), storage.ListOptions{Limit: 2, Continue: p1.Continue, ResourceVersion: "1"}, &l)
	if !storage.IsBadRequest(err) {
		t.Errorf("continue with another resourceVersion: got %v, want IsBadRequest", err)
	}
}

func testListAtRevision(t *testing.T, s storage.Interface, ns string) {
	ctx := ctxT(t)
	makePods(t, s, ns, 3)
	var before corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{}, &before); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, podKey(ns, "p01"), &corev1.Pod{}, nil); err != nil {
		t.Fatal(err)
	}
	var at corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{ResourceVersion: before.ResourceVersion}, &at); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(&at), names(&before)) || at.ResourceVersion != before.ResourceVersion {
		t.Errorf("list at %s = %v (rv %s), want %v", before.ResourceVersion, names(&at), at.ResourceVersion, names(&before))
	}
	var now corev1.PodList
	if err := s.List(ctx, podPrefix(ns), storage.ListOptions{ResourceVersion: "0"}, &now); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(&now), []string{"p00", "p02"}) {
		t.Errorf("list now = %v", names(&now))
	}
}
