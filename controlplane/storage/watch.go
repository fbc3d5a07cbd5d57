package storage

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
)

// BookmarkInterval is how often a watch with AllowWatchBookmarks asks etcd for a progress
// notification and, when etcd has moved on, sends a BOOKMARK. Set it before starting watches.
var BookmarkInterval = 5 * time.Second

// resultBuffer is how many events a watch queues for a slow reader before it stops reading
// etcd (etcd then buffers on its side).
const resultBuffer = 100

type etcdWatch struct {
	result chan watch.Event
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (w *etcdWatch) ResultChan() <-chan watch.Event { return w.result }

// Stop ends the watch and waits until its goroutines have exited; the result channel is
// closed then. Stop may be called more than once.
func (w *etcdWatch) Stop() {
	w.once.Do(w.cancel)
	<-w.done
}

// watchRun is the state of one watch's goroutine.
type watchRun struct {
	s      *store
	prefix string
	opts   ListOptions
	result chan watch.Event

	// bookmarkGVK types bookmark objects: guessed from the key, then taken from the objects seen.
	bookmarkGVK schema.GroupVersionKind
	haveKind    bool
	lastRV      int64
}

func (s *store) Watch(ctx context.Context, prefix string, opts ListOptions) (watch.Interface, error) {
	if prefix == "" || prefix[0] != '/' {
		return nil, newErr(ErrCodeBadRequest, prefix, 0, nil, "watch prefix %q must start with / (like /registry/pods/)", prefix)
	}
	rev, err := ParseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &etcdWatch{result: make(chan watch.Event, resultBuffer), cancel: cancel, done: make(chan struct{})}
	r := &watchRun{s: s, prefix: prefix, opts: opts, result: w.result}
	r.bookmarkGVK, r.haveKind = kindForKey(prefix)
	go func() {
		defer close(w.done)
		defer close(w.result)
		defer cancel()
		r.run(ctx, rev)
	}()
	return w, nil
}

func (r *watchRun) send(ctx context.Context, ev watch.Event) bool {
	select {
	case r.result <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *watchRun) sendError(ctx context.Context, code int32, reason metav1.StatusReason, msg string) {
	r.send(ctx, watch.Event{Type: watch.Error, Object: &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Code:     code,
		Reason:   reason,
		Message:  msg,
	}})
}

func (r *watchRun) sendInternal(ctx context.Context, err error) {
	r.sendError(ctx, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
}

func (r *watchRun) noteKind(obj runtime.Object) {
	if gvk := obj.GetObjectKind().GroupVersionKind(); !gvk.Empty() {
		r.bookmarkGVK, r.haveKind = gvk, true
	}
}

// sendBookmark sends a BOOKMARK whose object is of the watched kind with only its
// resourceVersion set (and the initial-events-end annotation when initialEnd).
func (r *watchRun) sendBookmark(ctx context.Context, rev int64, initialEnd bool) bool {
	if !r.haveKind {
		return true
	}
	obj, err := scheme.Scheme.New(r.bookmarkGVK)
	if err != nil {
		return true
	}
	obj.GetObjectKind().SetGroupVersionKind(r.bookmarkGVK)
	m, err := meta.Accessor(obj)
	if err != nil {
		return true
	}
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return r.send(ctx, watch.Event{Type: watch.Bookmark, Object: obj})
}

func (r *watchRun) run(ctx context.Context, rev int64) {
	single := !strings.HasSuffix(r.prefix, "/")
	var kopts []clientv3.OpOption
	if !single {
		kopts = append(kopts, clientv3.WithPrefix())
	}
	if rev == 0 {
		// "" or "0": the current state as ADDED events, then every change after it.
		resp, err := r.s.client.Get(ctx, r.prefix, kopts...)
		if err != nil {
			if ctx.Err() == nil {
				r.sendInternal(ctx, fmt.Errorf("watch %q: initial list: %w", r.prefix, err))
			}
			return
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			obj, err := r.s.decodeNew(string(kv.Key), kv.Value, kv.ModRevision)
			if err != nil {
				r.sendInternal(ctx, err)
				return
			}
			r.noteKind(obj)
			ok, err := r.opts.Predicate.Matches(obj)
			if err != nil {
				r.sendInternal(ctx, fmt.Errorf("select %q: %w", kv.Key, err))
				return
			}
			if ok && !r.send(ctx, watch.Event{Type: watch.Added, Object: obj}) {
				return
			}
		}
		// Tells a WatchList client (sendInitialEvents=true) that the initial state is complete.
		if r.opts.AllowWatchBookmarks && !r.sendBookmark(ctx, rev, true) {
			return
		}
	}
	r.lastRV = rev

	// Without a leader a member cannot know it is up to date: fail the watch instead of hanging.
	wctx := clientv3.WithRequireLeader(ctx)
	watcher := r.s.client.Watcher
	var tick <-chan time.Time
	wopts := append(kopts, clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	if r.opts.AllowWatchBookmarks {
		// A watcher of its own, so RequestProgress reaches only this watch's stream.
		own := newWatcher(r.s.client)
		defer own.Close()
		watcher = own
		wopts = append(wopts, clientv3.WithProgressNotify())
		t := time.NewTicker(BookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	ch := watcher.Watch(wctx, r.prefix, wopts...)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if err := watcher.RequestProgress(wctx); err != nil && ctx.Err() == nil {
				slog.Debug("etcd watch progress request", "prefix", r.prefix, "err", err)
			}
		case resp, ok := <-ch:
			if !ok {
				if ctx.Err() == nil {
					r.sendInternal(ctx, fmt.Errorf("watch %q: etcd closed the watch", r.prefix))
				}
				return
			}
			if resp.CompactRevision != 0 || resp.Err() == rpctypes.ErrCompacted {
				r.sendError(ctx, http.StatusGone, metav1.StatusReasonExpired,
					fmt.Sprintf("too old resource version: %d (%d)", rev, resp.CompactRevision))
				return
			}
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					r.sendInternal(ctx, fmt.Errorf("watch %q: %w", r.prefix, err))
				}
				return
			}
			if resp.IsProgressNotify() {
				if r.opts.AllowWatchBookmarks && resp.Header.Revision > r.lastRV {
					r.lastRV = resp.Header.Revision
					if !r.sendBookmark(ctx, r.lastRV, false) {
						return
					}
				}
				continue
			}
			for _, e := range resp.Events {
				ev, err := r.convert(e)
				if err != nil {
					r.sendInternal(ctx, err)
					return
				}
				r.lastRV = e.Kv.ModRevision
				if ev != nil && !r.send(ctx, *ev) {
					return
				}
			}
		}
	}
}

// convert turns an etcd event into a watch event, applying the predicate as the Kubernetes
// watch cache does: an object that stops matching is DELETED, one that starts matching ADDED.
// A nil event means the change is not visible through the predicate.
func (r *watchRun) convert(e *clientv3.Event) (*watch.Event, error) {
	key := string(e.Kv.Key)
	rev := e.Kv.ModRevision // for a delete, the revision of the delete
	pred := r.opts.Predicate
	match := func(obj runtime.Object) (bool, error) {
		ok, err := pred.Matches(obj)
		if err != nil {
			return false, fmt.Errorf("select %q: %w", key, err)
		}
		return ok, nil
	}
	if e.Type == clientv3.EventTypeDelete {
		if e.PrevKv == nil {
			// Only when the previous value was compacted away before the watch delivered it.
			slog.Warn("etcd delete event without previous value; dropped", "key", key, "rev", rev)
			return nil, nil
		}
		old, err := r.s.decodeNew(key, e.PrevKv.Value, rev)
		if err != nil {
			return nil, err
		}
		r.noteKind(old)
		if ok, err := match(old); err != nil || !ok {
			return nil, err
		}
		return &watch.Event{Type: watch.Deleted, Object: old}, nil
	}
	cur, err := r.s.decodeNew(key, e.Kv.Value, rev)
	if err != nil {
		return nil, err
	}
	r.noteKind(cur)
	curOK, err := match(cur)
	if err != nil {
		return nil, err
	}
	if e.IsCreate() || e.PrevKv == nil {
		if !curOK {
			return nil, nil
		}
		return &watch.Event{Type: watch.Added, Object: cur}, nil
	}
	if pred.Empty() {
		return &watch.Event{Type: watch.Modified, Object: cur}, nil
	}
	old, err := r.s.decodeNew(key, e.PrevKv.Value, rev)
	if err != nil {
		return nil, err
	}
	oldOK, err := match(old)
	if err != nil {
		return nil, err
	}
	switch {
	case curOK && oldOK:
		return &watch.Event{Type: watch.Modified, Object: cur}, nil
	case curOK:
		return &watch.Event{Type: watch.Added, Object: cur}, nil
	case oldOK:
		// The old state, at the revision where it stopped matching.
		return &watch.Event{Type: watch.Deleted, Object: old}, nil
	}
	return nil, nil
}
