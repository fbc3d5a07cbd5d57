package apiserver

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffnet/skiff/controlplane/storage"
)

// maxWatch bounds a watch without timeoutSeconds, like kube-apiserver's --min-request-timeout.
const maxWatch = 30 * time.Minute

type watchEvent struct {
	Type   watch.EventType `json:"type"`
	Object runtime.Object  `json:"object"`
}

func (s *Server) watch(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	q := r.URL.Query()
	pred, err := s.predicate(ri, q)
	if err != nil {
		writeError(w, err, ri.res.gr(), "")
		return
	}
	rv := q.Get("resourceVersion")
	bookmarks := isTrue(q.Get("allowWatchBookmarks"))
	switch q.Get("sendInitialEvents") {
	case "true":
		// WatchList: the current state as ADDED events, then a BOOKMARK annotated
		// k8s.io/initial-events-end, then changes. Storage does this for resourceVersion "".
		if !bookmarks {
			writeError(w, badRequest("sendInitialEvents=true requires allowWatchBookmarks=true"), ri.res.gr(), "")
			return
		}
		if m := q.Get("resourceVersionMatch"); m != string(metav1.ResourceVersionMatchNotOlderThan) {
			writeError(w, badRequest("sendInitialEvents=true requires resourceVersionMatch=NotOlderThan, got %q", m), ri.res.gr(), "")
			return
		}
		rv = ""
	case "false":
		if rv == "" || rv == "0" {
			// start at the current revision without the initial state
			list := ri.res.newList()
			if err := s.store.List(r.Context(), ri.res.prefix(ri.namespace), storage.ListOptions{Limit: 1}, list); err != nil {
				writeError(w, err, ri.res.gr(), "")
				return
			}
			rv = metaRV(list)
		}
	}
	timeout := maxWatch
	if t := q.Get("timeoutSeconds"); t != "" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 {
			writeError(w, badRequest("timeoutSeconds=%q: want a non-negative integer", t), ri.res.gr(), "")
			return
		}
		if n > 0 && time.Duration(n)*time.Second < timeout {
			timeout = time.Duration(n) * time.Second
		}
	}
	wi, err := s.store.Watch(r.Context(), ri.res.prefix(ri.namespace), storage.ListOptions{ResourceVersion: rv, Predicate: pred, AllowWatchBookmarks: bookmarks})
	if err != nil {
		writeError(w, err, ri.res.gr(), "")
		return
	}
	defer wi.Stop()
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	s.metrics.watchers.Inc()
	defer s.metrics.watchers.Dec()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	gvk := ri.res.gvk()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-timer.C:
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			if ev.Type == watch.Error {
				if st, ok := ev.Object.(*metav1.Status); ok {
					st.Kind, st.APIVersion = "Status", "v1"
				}
			} else if ev.Object != nil {
				ev.Object.GetObjectKind().SetGroupVersionKind(gvk)
			}
			data, err := json.Marshal(watchEvent{Type: ev.Type, Object: ev.Object})
			if err != nil {
				s.logWarn("encode watch event", "resource", ri.res.gvr.Resource, "err", err)
				return
			}
			if _, err := w.Write(append(data, '\n')); err != nil {
				return
			}
			// In a burst (a scheduler binding thousands of pods) the events queue up: send
			// them in one flush when the queue runs dry, not one write per event.
			if flusher != nil && (len(wi.ResultChan()) == 0 || ev.Type == watch.Error) {
				flusher.Flush()
			}
			if ev.Type == watch.Error {
				return
			}
		}
	}
}

func metaRV(list runtime.Object) string {
	if l, ok := list.(metav1.ListInterface); ok {
		return l.GetResourceVersion()
	}
	return ""
}
