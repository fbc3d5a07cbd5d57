package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// nodeIPAMController gives every Node a pod CIDR (spec.podCIDR/podCIDRs)
// carved from the cluster CIDR. The used set is rebuilt from the Nodes at
// start, so a restart (or a new leader) never hands one range out twice.
type nodeIPAMController struct {
	client     kubernetes.Interface
	log        *slog.Logger
	nodeLister corelisters.NodeLister
	queue      queue
	synced     toolscache.InformerSynced

	cluster  netip.Prefix
	maskSize int

	mu     sync.Mutex
	used   map[netip.Prefix]string // cidr -> node
	byNode map[string]netip.Prefix
}

// parseClusterCIDR validates the --cluster-cidr / mask-size pair.
func parseClusterCIDR(cidr string, mask int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return p, fmt.Errorf("cluster CIDR %q: %w (want e.g. 10.244.0.0/16)", cidr, err)
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("cluster CIDR %q: only IPv4 is supported", cidr)
	}
	if mask < p.Bits() || mask > 30 || mask-p.Bits() > 16 {
		return p, fmt.Errorf("node CIDR mask size %d: must be between %d and 30 and at most 16 bits longer than the cluster CIDR %s", mask, p.Bits(), cidr)
	}
	return p.Masked(), nil
}

func newNodeIPAMController(client kubernetes.Interface, f informers.SharedInformerFactory, cluster netip.Prefix, mask int, log *slog.Logger) *nodeIPAMController {
	nodes := f.Core().V1().Nodes()
	c := &nodeIPAMController{
		client: client, log: log.With("controller", "nodeipam"), nodeLister: nodes.Lister(),
		queue: newQueue("nodeipam"), synced: nodes.Informer().HasSynced,
		cluster: cluster, maskSize: mask,
		used: map[netip.Prefix]string{}, byNode: map[string]netip.Prefix{},
	}
	nodes.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.queue.Add(o.(*corev1.Node).Name) },
		UpdateFunc: func(_, n any) { c.queue.Add(n.(*corev1.Node).Name) },
		DeleteFunc: func(o any) {
			if n, ok := unwrap(o).(*corev1.Node); ok {
				c.queue.Add(n.Name)
			}
		},
	})
	return c
}

func (c *nodeIPAMController) run(ctx context.Context) {
	if !toolscache.WaitForCacheSync(ctx.Done(), c.synced) {
		return
	}
	nodes, _ := c.nodeLister.List(labels.Everything())
	for _, n := range nodes {
		c.markFromNode(n)
	}
	// One worker: allocation is a read-pick-write sequence on c.used.
	runWorkers(ctx, c.log, "nodeipam", c.queue, 1, c.sync)
}

func (c *nodeIPAMController) markFromNode(n *corev1.Node) {
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			continue
		}
		if owner, ok := c.used[p]; ok && owner != n.Name {
			c.log.Error("pod CIDR assigned to two nodes", "cidr", p, "nodes", []string{owner, n.Name})
			continue
		}
		c.used[p] = n.Name
		c.byNode[n.Name] = p
	}
}

func (c *nodeIPAMController) release(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.byNode[name]; ok {
		if c.used[p] == name {
			delete(c.used, p)
		}
		delete(c.byNode, name)
	}
}

// nextFree returns the lowest unused node CIDR and reserves it for name.
func (c *nodeIPAMController) nextFree(name string) (netip.Prefix, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	count := 1 << (c.maskSize - c.cluster.Bits())
	base := c.cluster.Addr().As4()
	b := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for i := 0; i < count; i++ {
		v := b + uint32(i)<<(32-c.maskSize)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), c.maskSize)
		if _, taken := c.used[p]; !taken {
			c.used[p] = name
			c.byNode[name] = p
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("cluster CIDR %s is exhausted: all %d /%d ranges are assigned; delete unused Nodes or start the server with a larger --cluster-cidr", c.cluster, count, c.maskSize)
}

func (c *nodeIPAMController) sync(ctx context.Context, name string) error {
	n, err := c.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		c.release(name)
		return nil
	}
	if err != nil {
		return err
	}
	if n.Spec.PodCIDR != "" || len(n.Spec.PodCIDRs) > 0 {
		c.markFromNode(n)
		return nil
	}
	// The cache may lag our own earlier write: read the live object first.
	live, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c.release(name)
		return nil
	}
	if err != nil {
		return err
	}
	if live.Spec.PodCIDR != "" || len(live.Spec.PodCIDRs) > 0 {
		c.markFromNode(live)
		return nil
	}
	p, err := c.nextFree(name)
	if err != nil {
		c.log.Error("cannot assign pod CIDR", "node", name, "err", err)
		return err
	}
	live.Spec.PodCIDR = p.String()
	live.Spec.PodCIDRs = []string{p.String()}
	if _, err := c.client.CoreV1().Nodes().Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		c.release(name)
		return fmt.Errorf("assign pod CIDR %s to node %s: %w", p, name, err)
	}
	c.log.Info("assigned pod CIDR", "node", name, "cidr", p)
	return nil
}
