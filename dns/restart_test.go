package dns

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

// TestSurvivesAPIOutage cuts the API off (watches closed, lists and watches
// failing) and checks that the server keeps answering from its last state,
// then that it relists and catches up with what changed meanwhile.
func TestSurvivesAPIOutage(t *testing.T) {
	client := fakeClient()
	var down atomic.Bool
	var mu sync.Mutex
	var watches []watch.Interface
	client.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		if down.Load() {
			return true, nil, errors.New("connection refused")
		}
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		mu.Lock()
		watches = append(watches, w)
		mu.Unlock()
		return true, w, err
	})
	s := startSyncedServer(t, Config{Client: client})
	addr := s.Addrs()[0]
	name := "svc1.testns.svc.cluster.local."
	if r := query(t, addr, "udp", name, mdns.TypeA, 0); len(r.Answer) != 1 {
		t.Fatalf("before outage: %v", r)
	}

	// The API server goes away: every watch ends, nothing can be listed.
	down.Store(true)
	mu.Lock()
	for _, w := range watches {
		w.Stop()
	}
	watches = nil
	mu.Unlock()
	// Meanwhile the Service is deleted (straight in the store, unseen).
	gvr := corev1.SchemeGroupVersion.WithResource("services")
	if err := client.Tracker().Delete(gvr, "testns", "svc1"); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		r := query(t, addr, "udp", name, mdns.TypeA, 0)
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("during the outage: %s with %d answers, want the last known record", mdns.RcodeToString[r.Rcode], len(r.Answer))
		}
		time.Sleep(10 * time.Millisecond) // spacing queries over the outage, not waiting for a condition
	}
	if !s.Ready() {
		t.Errorf("Ready went false during the outage")
	}

	// Back: the informers relist and the deletion shows.
	down.Store(false)
	waitFor(t, 60*time.Second, "relist after the outage", func() bool {
		return query(t, addr, "udp", name, mdns.TypeA, 0).Rcode == mdns.RcodeNameError
	})
}

// TestRelistAfterWatchExpiry hides a deletion from the watches, then ends
// them with 410 Gone (the API server's answer when a watch's revision has
// been compacted away). A watch resumed from its last revision would never
// see the deletion: the server must relist, take the deletion the relist
// finds (it arrives as a DeletedFinalStateUnknown tombstone), and keep
// answering from its last state until then.
func TestRelistAfterWatchExpiry(t *testing.T) {
	client := fakeClient()
	var cut atomic.Bool
	var mu sync.Mutex
	var proxies []*watch.RaceFreeFakeWatcher
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		p := watch.NewRaceFreeFake()
		go func() {
			for ev := range w.ResultChan() {
				if !cut.Load() {
					p.Action(ev.Type, ev.Object)
				}
			}
		}()
		mu.Lock()
		proxies = append(proxies, p)
		mu.Unlock()
		return true, p, nil
	})
	s := startSyncedServer(t, Config{Client: client})
	addr := s.Addrs()[0]
	name := "svc1.testns.svc.cluster.local."
	if r := query(t, addr, "udp", name, mdns.TypeA, 0); len(r.Answer) != 1 {
		t.Fatalf("before: %v", r)
	}

	cut.Store(true)
	if err := client.CoreV1().Services("testns").Delete(context.Background(), "svc1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := query(t, addr, "udp", name, mdns.TypeA, 0); len(r.Answer) != 1 {
		t.Fatalf("with the deletion unseen: %s, want the last known record", mdns.RcodeToString[r.Rcode])
	}
	cut.Store(false)
	expired := apierrors.NewResourceExpired("too old resource version: 1 (42)").ErrStatus
	mu.Lock()
	for _, p := range proxies {
		p.Error(&expired)
		p.Stop()
	}
	mu.Unlock()
	waitFor(t, 30*time.Second, "relist after 410 Gone", func() bool {
		return query(t, addr, "udp", name, mdns.TypeA, 0).Rcode == mdns.RcodeNameError
	})
	if !s.Ready() {
		t.Errorf("Ready went false across the relist")
	}
}
