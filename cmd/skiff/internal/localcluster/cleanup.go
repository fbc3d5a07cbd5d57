package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffnet/skiff/datapath/netns"
	"github.com/skiffnet/skiff/kubelet/podnet"
	"github.com/skiffnet/skiff/kubelet/runtime"
)

// PinRoot holds each node's pinned BPF maps and links, in a directory named after the node.
const PinRoot = "/sys/fs/bpf/skiff"

// removeNode takes one node away: its namespace (and so its links) and its pinned state.
func removeNode(nw *Network, i int) {
	netns.Delete(nw.NodeName(i))
	os.RemoveAll(filepath.Join(PinRoot, nw.NodeName(i)))
}

// cleanupNodes removes the containers, pinned BPF state and leftover cgroups of every node of
// the cluster, whether or not its namespace still exists.
func cleanupNodes(ctx context.Context, o Options, nw *Network) error {
	prefix := fmt.Sprintf("skiff-%s-", o.Cluster)
	var errs []error
	if _, err := os.Stat(o.ContainerdSocket); err == nil {
		nss, err := runtime.NodeNamespaces(ctx, o.ContainerdSocket)
		if err != nil {
			errs = append(errs, err)
		}
		for _, ns := range nss {
			if !strings.HasPrefix(ns, runtime.NamespaceFor(prefix)) {
				continue
			}
			if err := removeContainers(ctx, o.ContainerdSocket, ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	pins, _ := filepath.Glob(filepath.Join(PinRoot, prefix+"*"))
	for _, p := range pins {
		// Removing the pins of links detaches their programs; maps go with their last user.
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("remove pinned BPF state %s: %w", p, err))
		}
	}
	// runc removes a container's cgroups when the container goes; what a crash left behind is
	// empty and removable (children first).
	runtime.RemoveCgroupsMatching(runtime.NamespaceFor(prefix) + "*")
	runtime.RemoveCgroupsMatching("skiff-" + o.Cluster + "*")
	// Pod namespaces outlive their containers (an agent restart adopts them): the IPAM records
	// name every pod that had one.
	records, _ := filepath.Glob(filepath.Join(o.DataDir, "nodes", "*", "podnet", "ipam", "*", "*"))
	for _, r := range records {
		b, err := os.ReadFile(r)
		if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
			if err := netns.Delete(podnet.NetNSName(f[0])); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for i := 1; i <= MaxNodes; i++ {
		if _, err := os.Stat(nw.nodeNetnsPath(i)); err == nil {
			removeNode(nw, i)
		}
	}
	return errors.Join(errs...)
}

func removeContainers(ctx context.Context, socket, ns string) error {
	rt, err := runtime.New(ctx, socket, ns)
	if err != nil {
		return err
	}
	defer rt.Close()
	cs, err := rt.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if err := rt.Remove(ctx, c.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s/%s: %w", ns, c.ID, err))
		}
	}
	return errors.Join(errs...)
}
