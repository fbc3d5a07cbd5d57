package apiserver_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

// Creating content checks its namespace from a watch-fed cache. Two API servers share one
// etcd: a namespace created through one is usable through the other at once (a cache miss
// reads etcd), and one deleted through the other soon refuses content (the watch), while
// a server refuses content at once after its own delete.
func TestNamespaceCacheAcrossServers(t *testing.T) {
	a := testenv.Start(t)
	b := testenv.StartPeer(t, a)
	ctx := context.Background()
	cm := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}

	for i, name := range []string{"shared-1", "shared-2"} {
		if _, err := b.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Through a, right away: a's cache may not have seen it yet.
		if _, err := a.Client.CoreV1().ConfigMaps(name).Create(ctx, cm("first"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create in a namespace made through the other server: %v", err)
		}
		// Terminating through b (the second one) or through a (the first).
		deleter := b
		if i == 1 {
			deleter = a
		}
		if err := deleter.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if deleter == a {
			_, err := a.Client.CoreV1().ConfigMaps(name).Create(ctx, cm("late"), metav1.CreateOptions{})
			wantStatus(t, err, 403)
			continue
		}
		n := 0
		eventually(t, "the other server refuses content in a terminating namespace", func() (bool, error) {
			n++
			_, err := a.Client.CoreV1().ConfigMaps(name).Create(ctx, cm(fmt.Sprintf("late-%d", n)), metav1.CreateOptions{})
			return apierrors.IsForbidden(err), err
		})
	}
	// A namespace that never existed is a 404 from either server.
	_, err := a.Client.CoreV1().ConfigMaps("never-made").Create(ctx, cm("x"), metav1.CreateOptions{})
	wantStatus(t, err, 404)
}
