package apiserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// agentClient calls node agents, trusting only the cluster CA.
func (s *Server) agentClient() *http.Client {
	s.agentOnce.Do(func() {
		tr := &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: s.opts.CA.Pool(), MinVersion: tls.VersionTLS12},
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   false,
		}
		s.agent = &http.Client{Transport: tr}
	})
	return s.agent
}

type agentLazy struct {
	agentOnce sync.Once
	agent     *http.Client
}

// agentURL finds the pod's node and container and returns the agent's address and the
// node's token.
func (s *Server) agentURL(ctx context.Context, ri *reqInfo, q url.Values) (base *url.URL, container, token string, err error) {
	pod := &corev1.Pod{}
	if err := s.store.Get(ctx, ri.res.key(ri.namespace, ri.name), pod); err != nil {
		return nil, "", "", err
	}
	container = q.Get("container")
	if container == "" {
		if len(pod.Spec.Containers) != 1 {
			names := []string{}
			for _, c := range pod.Spec.Containers {
				names = append(names, c.Name)
			}
			return nil, "", "", badRequest("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
		}
		container = pod.Spec.Containers[0].Name
	} else if !podHasContainer(pod, container) {
		return nil, "", "", badRequest("container %s is not valid for pod %s", container, pod.Name)
	}
	if pod.Spec.NodeName == "" {
		return nil, "", "", badRequest("pod %s is not scheduled to a node yet", pod.Name)
	}
	node := &corev1.Node{}
	if err := s.store.Get(ctx, "/registry/nodes/"+pod.Spec.NodeName, node); err != nil {
		return nil, "", "", fmt.Errorf("node %s of pod %s: %w", pod.Spec.NodeName, pod.Name, err)
	}
	ip := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
			break
		}
	}
	if ip == "" {
		return nil, "", "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %s reports no InternalIP address yet", node.Name))
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = 10250
	}
	tok, ok := s.nodeTokens.TokenFor(ctx, node.Name)
	if !ok {
		return nil, "", "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %s has no credentials (it did not join through /skiff/v1/join)", node.Name))
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(ip, strconv.Itoa(port))}, container, tok, nil
}

func podHasContainer(p *corev1.Pod, name string) bool {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == name {
			return true
		}
	}
	return false
}

// podLog proxies GET pods/NAME/log to the agent's /containerLogs.
func (s *Server) podLog(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	q := r.URL.Query()
	base, container, tok, err := s.agentURL(r.Context(), ri, q)
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	out := url.Values{}
	for _, k := range []string{"follow", "tailLines", "previous", "timestamps", "sinceSeconds", "limitBytes"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	u := base.JoinPath("containerLogs", ri.namespace, ri.name, container)
	u.RawQuery = out.Encode()
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	s.proxy(w, req, tok, ri)
}

// podExec proxies POST pods/NAME/exec to the agent's /exec, streaming stdin (the request
// body) and the framed output both ways at once.
func (s *Server) podExec(w http.ResponseWriter, r *http.Request, ri *reqInfo) {
	if r.Method != http.MethodPost {
		writeError(w, methodNotAllowed(r.Method, "pods/exec"), ri.res.gr(), ri.name)
		return
	}
	q := r.URL.Query()
	if len(q["command"]) == 0 {
		writeError(w, badRequest("exec needs at least one command= parameter"), ri.res.gr(), ri.name)
		return
	}
	base, container, tok, err := s.agentURL(r.Context(), ri, q)
	if err != nil {
		writeError(w, err, ri.res.gr(), ri.name)
		return
	}
	out := url.Values{"command": q["command"]}
	for _, k := range []string{"stdin", "stdout", "stderr", "tty"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	u := base.JoinPath("exec", ri.namespace, ri.name, container)
	u.RawQuery = out.Encode()
	_ = http.NewResponseController(w).EnableFullDuplex()
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, u.String(), r.Body)
	req.ContentLength = -1
	s.proxy(w, req, tok, ri)
}

func (s *Server) proxy(w http.ResponseWriter, req *http.Request, tok string, ri *reqInfo) {
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.agentClient().Do(req)
	if err != nil {
		writeError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("cannot reach the node agent at %s: %v", req.URL.Host, err)), ri.res.gr(), ri.name)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Trailer"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			return
		}
	}
}
