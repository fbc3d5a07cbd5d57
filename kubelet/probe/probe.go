// Package probe runs Kubernetes liveness, readiness and startup probes (httpGet, tcpSocket,
// exec) with Kubernetes' semantics for delays, periods, timeouts and thresholds.
package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Result of one probe or of a probe's thresholded state.
type Result int

const (
	Unknown Result = iota
	Success
	Failure
)

func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Failure:
		return "failure"
	}
	return "unknown"
}

// Kind of probe.
type Kind string

const (
	Liveness  Kind = "Liveness"
	Readiness Kind = "Readiness"
	Startup   Kind = "Startup"
)

// Prober performs single probes. Dial opens connections from the node's network namespace;
// Exec runs a command in the container and returns its exit code and output.
type Prober struct {
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Exec func(ctx context.Context, cmd []string) (int, string, error)
}

// Do runs p once against a container of the pod at podIP, with p's timeout.
func (pr *Prober) Do(ctx context.Context, p *corev1.Probe, podIP string, c *corev1.Container, unit time.Duration) (Result, string) {
	timeout := time.Duration(orDefault(p.TimeoutSeconds, 1)) * unit
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		return pr.http(ctx, p.HTTPGet, podIP, c)
	case p.TCPSocket != nil:
		return pr.tcp(ctx, p.TCPSocket, podIP, c)
	case p.Exec != nil:
		if pr.Exec == nil {
			return Failure, "exec probes are not available"
		}
		code, out, err := pr.Exec(ctx, p.Exec.Command)
		if err != nil {
			return Failure, fmt.Sprintf("exec %v: %v", p.Exec.Command, err)
		}
		if code != 0 {
			return Failure, fmt.Sprintf("command %v exited with %d: %s", p.Exec.Command, code, strings.TrimSpace(out))
		}
		return Success, ""
	case p.GRPC != nil:
		return Failure, "grpc probes are not supported by skiff; use httpGet, tcpSocket or exec"
	}
	return Failure, "probe has no handler (set httpGet, tcpSocket or exec)"
}

// ResolvePort turns a probe's port (number or container port name) into a number.
func ResolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		if port.IntVal <= 0 || port.IntVal > 65535 {
			return 0, fmt.Errorf("port %d out of range", port.IntVal)
		}
		return int(port.IntVal), nil
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	if c != nil {
		for _, cp := range c.Ports {
			if cp.Name == port.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("port name %q is not a port of the container", port.StrVal)
}

func (pr *Prober) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if pr.Dial != nil {
		return pr.Dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (pr *Prober) tcp(ctx context.Context, t *corev1.TCPSocketAction, podIP string, c *corev1.Container) (Result, string) {
	port, err := ResolvePort(t.Port, c)
	if err != nil {
		return Failure, err.Error()
	}
	host := t.Host
	if host == "" {
		host = podIP
	}
	conn, err := pr.dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return Failure, fmt.Sprintf("tcp probe: %v", err)
	}
	conn.Close()
	return Success, ""
}

func (pr *Prober) http(ctx context.Context, h *corev1.HTTPGetAction, podIP string, c *corev1.Container) (Result, string) {
	port, err := ResolvePort(h.Port, c)
	if err != nil {
		return Failure, err.Error()
	}
	host := h.Host
	if host == "" {
		host = podIP
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	full := u.String() + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, full, nil)
	if err != nil {
		return Failure, fmt.Sprintf("http probe %s: %v", full, err)
	}
	req.Header.Set("User-Agent", "skiff-probe/1.0")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	tr := &http.Transport{
		DialContext:       pr.dial,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // as the kubelet does
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return Failure, fmt.Sprintf("http probe: %v", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return Success, ""
	}
	return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
}

func orDefault(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}
