package storage

import (
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// kindsByResource maps a resource name ("pods", "deployments") to its kind, preferring the
// core group, then apps, then the scheme's priority order. Watch uses it to type bookmark
// events before it has seen any object under the prefix.
var kindsByResource = sync.OnceValue(func() map[string]schema.GroupVersionKind {
	m := map[string]schema.GroupVersionKind{}
	add := func(gv schema.GroupVersion) {
		for kind := range scheme.Scheme.KnownTypes(gv) {
			if strings.HasSuffix(kind, "List") || strings.HasSuffix(kind, "Options") {
				continue
			}
			gvk := gv.WithKind(kind)
			plural, _ := meta.UnsafeGuessKindToResource(gvk)
			if _, ok := m[plural.Resource]; !ok {
				m[plural.Resource] = gvk
			}
		}
	}
	add(schema.GroupVersion{Version: "v1"})
	add(schema.GroupVersion{Group: "apps", Version: "v1"})
	for _, gv := range scheme.Scheme.PrioritizedVersionsAllGroups() {
		add(gv)
	}
	return m
})

// kindForKey guesses the kind stored under a /registry/{resource}/... key or prefix.
func kindForKey(key string) (schema.GroupVersionKind, bool) {
	rest, ok := strings.CutPrefix(key, "/registry/")
	if !ok {
		return schema.GroupVersionKind{}, false
	}
	resource, _, _ := strings.Cut(rest, "/")
	gvk, ok := kindsByResource()[resource]
	return gvk, ok
}
