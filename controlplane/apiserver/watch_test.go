package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffnet/skiff/controlplane/testenv"
)

func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event in 10s")
	}
	return watch.Event{}
}

func TestWatchResumeAndGone(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	ns := newNS(t, env)
	cms := env.Client.CoreV1().ConfigMaps(ns)
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "w=1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	a, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"w": "1"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("list rv %s, a rv %s", list.ResourceVersion, a.ResourceVersion)
	cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{})
	a.Data = map[string]string{"k": "v"}
	cms.Update(ctx, a, metav1.UpdateOptions{})
	cms.Delete(ctx, "a", metav1.DeleteOptions{})
	var rvs []string
	for _, want := range []watch.EventType{watch.Added, watch.Modified, watch.Deleted} {
		ev := next(t, w)
		cm := ev.Object.(*corev1.ConfigMap)
		if ev.Type != want || cm.Name != "a" {
			t.Fatalf("want %s of a, got %s of %s", want, ev.Type, cm.Name)
		}
		rvs = append(rvs, cm.ResourceVersion)
	}
	// resume after the ADDED: MODIFIED and DELETED again
	w2, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: rvs[0], LabelSelector: "w=1"})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w2); ev.Type != watch.Modified {
		t.Fatalf("resume: want MODIFIED, got %s", ev.Type)
	}
	if ev := next(t, w2); ev.Type != watch.Deleted {
		t.Fatalf("resume: want DELETED, got %s", ev.Type)
	}
	w2.Stop()

	// compact past the first revision: a watch from it gets 410
	rev, _ := strconv.ParseInt(rvs[2], 10, 64)
	if _, err := env.Server.EtcdClient().Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	w3, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: rvs[0]})
	if err == nil {
		ev := next(t, w3)
		st, ok := ev.Object.(*metav1.Status)
		if ev.Type != watch.Error || !ok || st.Code != http.StatusGone {
			t.Fatalf("watch from compacted rv: want ERROR 410, got %s %v", ev.Type, ev.Object)
		}
		w3.Stop()
	} else if !apierrors.IsGone(err) && !apierrors.IsResourceExpired(err) {
		t.Fatalf("watch from compacted rv: %v", err)
	}
	_, err = cms.List(ctx, metav1.ListOptions{ResourceVersion: rvs[0], ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("list at compacted rv: want 410, got %v", err)
	}
}

// TestWatchListRaw checks the sendInitialEvents stream: ADDED for the current state, then a
// BOOKMARK annotated k8s.io/initial-events-end.
func TestWatchListRaw(t *testing.T) {
	env := testenv.Start(t)
	ns := newNS(t, env)
	for i := 0; i < 3; i++ {
		env.Client.CoreV1().Pods(ns).Create(context.Background(), pod(fmt.Sprintf("p%d", i)), metav1.CreateOptions{})
	}
	tr, _ := rest.TransportFor(env.Config)
	req, _ := http.NewRequest("GET", env.URL+"/api/v1/namespaces/"+ns+"/pods?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=5", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	added := 0
	for sc.Scan() {
		var ev struct {
			Type   string
			Object struct {
				Kind     string
				Metadata metav1.ObjectMeta
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad watch line %q: %v", sc.Text(), err)
		}
		if ev.Type == "ADDED" {
			added++
			continue
		}
		if ev.Type != "BOOKMARK" || ev.Object.Kind != "Pod" || ev.Object.Metadata.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
			t.Fatalf("want the initial-events-end BOOKMARK, got %s", sc.Text())
		}
		if added != 3 {
			t.Fatalf("want 3 ADDED before the bookmark, got %d", added)
		}
		return
	}
	t.Fatalf("stream ended without the bookmark (%d added)", added)
}

func TestInformers(t *testing.T) {
	env := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNS(t, env)
	for i := 0; i < 5; i++ {
		env.Client.CoreV1().Pods(ns).Create(ctx, pod(fmt.Sprintf("pre-%d", i)), metav1.CreateOptions{})
	}
	f := informers.NewSharedInformerFactoryWithOptions(env.Client, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	events := make(chan string, 100)
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { events <- "add " + o.(*corev1.Pod).Name },
		UpdateFunc: func(_, o any) { events <- "update " + o.(*corev1.Pod).Name },
		DeleteFunc: func(o any) {
			if p, ok := o.(*corev1.Pod); ok {
				events <- "delete " + p.Name
			}
		},
	})
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	if n := len(inf.GetStore().List()); n != 5 {
		t.Fatalf("informer has %d pods, want 5", n)
	}
	env.Client.CoreV1().Pods(ns).Create(ctx, pod("live"), metav1.CreateOptions{})
	env.Client.CoreV1().Pods(ns).Delete(ctx, "live", metav1.DeleteOptions{})
	seen := map[string]bool{}
	deadline := time.After(15 * time.Second)
	for !seen["add live"] || !seen["delete live"] {
		select {
		case e := <-events:
			seen[e] = true
		case <-deadline:
			t.Fatalf("informer events: %v", seen)
		}
	}
}
