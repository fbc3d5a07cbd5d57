// Package runtime runs a node's containers through containerd's Go client.
//
// Every container of a node lives in one containerd namespace (skiff-<node>). Containers carry
// labels naming their pod, so an agent that restarts finds and adopts what is already running.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// Snapshotter is the snapshotter images are unpacked for and containers run on.
const Snapshotter = "overlayfs"

// Labels put on every container so a restarted agent can map containers back to pods.
const (
	LabelPodNamespace  = "skiff.pod.namespace"
	LabelPodName       = "skiff.pod.name"
	LabelPodUID        = "skiff.pod.uid"
	LabelContainerName = "skiff.container.name"
	LabelContainerKind = "skiff.container.kind" // "init" or "app"
	LabelRestartCount  = "skiff.restart.count"
	LabelSpecHash      = "skiff.spec.hash"
)

// Runtime is a containerd client bound to one namespace.
type Runtime struct {
	c         *client.Client
	namespace string
	socket    string
	images    imageCache
}

// New connects to containerd at socket and uses the given namespace for everything.
func New(ctx context.Context, socket, namespace string) (*Runtime, error) {
	c, err := client.New(socket, client.WithDefaultNamespace(namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w (is containerd running? `bash .ci/deps` starts it)", socket, err)
	}
	r := &Runtime{c: c, namespace: namespace, socket: socket}
	if _, err := c.Version(r.ctx(ctx)); err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd at %s: %w", socket, err)
	}
	// Create the namespace up front so `skiff image import` finds a new node before it has run
	// any container.
	if err := c.NamespaceService().Create(ctx, namespace, nil); err != nil && !errdefs.IsAlreadyExists(err) {
		c.Close()
		return nil, fmt.Errorf("containerd namespace %s: %w", namespace, err)
	}
	return r, nil
}

// Namespace is the containerd namespace this runtime uses.
func (r *Runtime) Namespace() string { return r.namespace }

// Version is containerd's version string, for Node.status.nodeInfo.
func (r *Runtime) Version(ctx context.Context) string {
	v, err := r.c.Version(r.ctx(ctx))
	if err != nil {
		return "containerd://unknown"
	}
	return "containerd://" + strings.TrimPrefix(v.Version, "v")
}

// Healthy reports whether containerd answers.
func (r *Runtime) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := r.c.IsServing(r.ctx(ctx))
	return err
}

// Close closes the client.
func (r *Runtime) Close() error { return r.c.Close() }

// Client is the underlying containerd client.
func (r *Runtime) Client() *client.Client { return r.c }

func (r *Runtime) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.namespace)
}

// IsNotFound reports whether err says a containerd object does not exist.
func IsNotFound(err error) bool { return errdefs.IsNotFound(err) || errors.Is(err, ErrImageNotFound) }

// NamespaceFor is the containerd namespace of a node.
func NamespaceFor(node string) string { return "skiff-" + node }

// NodeNamespaces lists the containerd namespaces of skiff nodes on this containerd.
func NodeNamespaces(ctx context.Context, socket string) ([]string, error) {
	c, err := client.New(socket, client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", socket, err)
	}
	defer c.Close()
	all, err := c.NamespaceService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containerd namespaces: %w", err)
	}
	var out []string
	for _, n := range all {
		if strings.HasPrefix(n, "skiff-") {
			out = append(out, n)
		}
	}
	return out, nil
}
