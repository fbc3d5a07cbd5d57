package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiffnet/skiff/kubelet/runtime"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func everythingSel() labels.Selector { return labels.Everything() }

func listenPort(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return 0
}

// startServer serves the agent API (containerLogs, exec) over HTTPS with the serving cert
// from the join; only this node's own token is accepted. Without credentials (a test client)
// there is no API.
func (a *Agent) startServer(ctx context.Context) (*http.Server, error) {
	if a.creds == nil {
		return nil, nil
	}
	cert, err := tls.X509KeyPair([]byte(a.creds.ServingCertPEM), []byte(a.creds.ServingKeyPEM))
	if err != nil {
		return nil, fmt.Errorf("serving cert: %w", err)
	}
	var ln net.Listener
	listen := func() error {
		var err error
		ln, err = net.Listen("tcp", a.cfg.Listen)
		return err
	}
	var err2 error
	if a.cfg.ListenHostNS {
		err2 = listen()
	} else {
		err2 = a.inNodeNS(listen)
	}
	if err := err2; err != nil {
		return nil, fmt.Errorf("agent API listen on %s: %w", a.cfg.Listen, err)
	}
	a.listenAddr = ln.Addr()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", a.auth(a.serveLogs))
	mux.HandleFunc("POST /exec/{ns}/{pod}/{container}", a.auth(a.serveExec))
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
			a.log.Error("agent API", "err", err)
		}
	}()
	return srv, nil
}

func (a *Agent) auth(h http.HandlerFunc) http.HandlerFunc {
	want := []byte("Bearer " + a.creds.Token)
	return func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, "unauthorized: the agent accepts only its own node token", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// findContainer resolves ns/pod/container of a request to the pod and containerd ID.
func (a *Agent) findContainer(r *http.Request) (*corev1.Pod, string, int, error) {
	ns, name, cname := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	pod, err := a.pods.Pods(ns).Get(name)
	if err != nil {
		return nil, "", http.StatusNotFound, fmt.Errorf("pod %s/%s is not on node %s", ns, name, a.cfg.NodeName)
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == cname {
			return pod, containerID(pod.UID, cname), 0, nil
		}
	}
	return nil, "", http.StatusNotFound, fmt.Errorf("pod %s/%s has no container %q", ns, name, cname)
}

// logFiles lists a container's per-attempt log files, oldest first.
func (a *Agent) logFiles(uid, container string) []string {
	dir := filepath.Join(a.podDir(uid), "logs", container)
	ents, _ := os.ReadDir(dir)
	var nums []int
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log")); err == nil {
			nums = append(nums, n)
		}
	}
	for i := 1; i < len(nums); i++ {
		for j := i; j > 0 && nums[j] < nums[j-1]; j-- {
			nums[j], nums[j-1] = nums[j-1], nums[j]
		}
	}
	var out []string
	for _, n := range nums {
		out = append(out, filepath.Join(dir, strconv.Itoa(n)+".log"))
	}
	return out
}

func (a *Agent) serveLogs(w http.ResponseWriter, r *http.Request) {
	pod, id, code, err := a.findContainer(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	q := r.URL.Query()
	files := a.logFiles(string(pod.UID), r.PathValue("container"))
	if q.Get("previous") == "true" {
		if len(files) < 2 {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", r.PathValue("container"), pod.Name), http.StatusBadRequest)
			return
		}
		files = files[:len(files)-1]
	}
	if len(files) == 0 {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start", r.PathValue("container"), pod.Name), http.StatusBadRequest)
		return
	}
	path := files[len(files)-1]
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	tail := -1
	if s := q.Get("tailLines"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			http.Error(w, "tailLines must be a non-negative integer", http.StatusBadRequest)
			return
		}
		tail = n
	}
	if tail >= 0 {
		b, _ := io.ReadAll(f)
		lines := bytes.SplitAfter(b, []byte("\n"))
		if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
			lines = lines[:len(lines)-1]
		}
		if len(lines) > tail {
			lines = lines[len(lines)-tail:]
		}
		for _, l := range lines {
			w.Write(l)
		}
	} else {
		io.Copy(w, f)
	}
	if q.Get("follow") != "true" || q.Get("previous") == "true" {
		return
	}
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		if fl != nil {
			fl.Flush()
		}
		n, _ := f.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			continue
		}
		st, _, err := a.rt.State(r.Context(), id)
		if err != nil || st.Status != runtime.StatusRunning {
			// Drain what the exit left and stop.
			io.Copy(w, f)
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// frameWriter writes exec output frames: 1 byte stream id, 4 bytes big-endian length, payload.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
	fl http.Flusher
}

func (f *frameWriter) frame(stream byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var hdr [5]byte
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := f.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := f.w.Write(p); err != nil {
		return err
	}
	if f.fl != nil {
		f.fl.Flush()
	}
	return nil
}

type streamWriter struct {
	f  *frameWriter
	id byte
}

func (s streamWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.f.frame(s.id, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (a *Agent) serveExec(w http.ResponseWriter, r *http.Request) {
	_, id, code, err := a.findContainer(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		http.Error(w, "exec: no command (add ?command=...)", http.StatusBadRequest)
		return
	}
	st, _, err := a.rt.State(r.Context(), id)
	if err != nil || st.Status != runtime.StatusRunning {
		http.Error(w, fmt.Sprintf("container %q is not running", r.PathValue("container")), http.StatusBadRequest)
		return
	}
	// Read stdin and write output at the same time (HTTP/1.1 full duplex).
	http.NewResponseController(w).EnableFullDuplex()
	w.Header().Set("Content-Type", "application/vnd.skiff.exec-stream")
	w.WriteHeader(http.StatusOK)
	fw := &frameWriter{w: w}
	fw.fl, _ = w.(http.Flusher)
	var stdin io.Reader
	if r.ContentLength != 0 {
		stdin = bufio.NewReader(r.Body)
	}
	exit, err := a.rt.Exec(r.Context(), id, cmd, stdin, streamWriter{fw, 1}, streamWriter{fw, 2})
	if err != nil && exit < 0 {
		fw.frame(2, []byte(err.Error()+"\n"))
		exit = 126
		if strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "no such file") {
			exit = 127
		}
	}
	fw.frame(3, []byte(strconv.Itoa(exit)))
}
