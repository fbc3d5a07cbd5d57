package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Annotations by which a node publishes its VTEP on its Node object.
const (
	AnnotationVtepMAC = "skiff.io/vtep-mac"
	AnnotationVtepIP  = "skiff.io/vtep-ip"
)

// PublishVTEP writes this node's VTEP MAC and IP on its Node object.
func PublishVTEP(ctx context.Context, client kubernetes.Interface, node string, mac net.HardwareAddr, ip net.IP) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		AnnotationVtepMAC: mac.String(),
		AnnotationVtepIP:  ip.String(),
	}}})
	if _, err := client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "skiff-overlay"}); err != nil {
		return fmt.Errorf("publish VTEP of node %s: %w", node, err)
	}
	return nil
}

// PeerFromNode reads a node's overlay identity; ok is false while the node has not published
// its VTEP or has no pod CIDR yet.
func PeerFromNode(n *corev1.Node) (p Peer, ok bool) {
	if n.Spec.PodCIDR == "" {
		return p, false
	}
	_, cidr, err := net.ParseCIDR(n.Spec.PodCIDR)
	if err != nil {
		return p, false
	}
	mac, err := net.ParseMAC(n.Annotations[AnnotationVtepMAC])
	if err != nil {
		return p, false
	}
	ip := net.ParseIP(n.Annotations[AnnotationVtepIP])
	if ip.To4() == nil {
		return p, false
	}
	return Peer{Node: n.Name, PodCIDR: cidr, VtepIP: ip.To4(), VtepMAC: mac}, true
}

// peerView keeps of a Node only what PeerFromNode reads. Every agent caches every Node, and
// a Node's status (conditions, images) is most of it.
func peerView(o any) (any, error) {
	n, ok := o.(*corev1.Node)
	if !ok {
		return o, nil // a tombstone: passed on as it is
	}
	v := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion},
		Spec:       corev1.NodeSpec{PodCIDR: n.Spec.PodCIDR, PodCIDRs: n.Spec.PodCIDRs},
	}
	for _, k := range []string{AnnotationVtepMAC, AnnotationVtepIP} {
		if val, ok := n.Annotations[k]; ok {
			if v.Annotations == nil {
				v.Annotations = map[string]string{}
			}
			v.Annotations[k] = val
		}
	}
	return v, nil
}

// samePeer reports whether two versions of a Node give the same peer (or none): a Node's
// status heartbeat, every few seconds from every node, then costs no netlink round.
func samePeer(a, b any) bool {
	na, ok1 := a.(*corev1.Node)
	nb, ok2 := b.(*corev1.Node)
	if !ok1 || !ok2 {
		return false
	}
	pa, oka := PeerFromNode(na)
	pb, okb := PeerFromNode(nb)
	if oka != okb {
		return false
	}
	return !oka || pa.Node == pb.Node && pa.PodCIDR.String() == pb.PodCIDR.String() &&
		pa.VtepIP.Equal(pb.VtepIP) && pa.VtepMAC.String() == pb.VtepMAC.String()
}

// Run keeps o's peers equal to the other nodes in the API until ctx ends. Every change of a
// Node's peer identity triggers a full, idempotent SetPeers; a periodic resync repairs state
// changed behind its back.
func Run(ctx context.Context, client kubernetes.Interface, self string, o *Overlay, log *slog.Logger) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	if err := nodes.Informer().SetTransform(peerView); err != nil {
		return fmt.Errorf("overlay: watch nodes: %w", err)
	}
	kick := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke,
		UpdateFunc: func(old, n any) {
			if !samePeer(old, n) {
				poke(n)
			}
		},
		DeleteFunc: poke,
	}); err != nil {
		return fmt.Errorf("overlay: watch nodes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return ctx.Err()
	}
	resync := time.NewTicker(30 * time.Second)
	defer resync.Stop()
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err == nil {
			var peers []Peer
			for _, n := range list {
				if n.Name == self {
					continue
				}
				if p, ok := PeerFromNode(n); ok {
					peers = append(peers, p)
				}
			}
			if err := o.SetPeers(peers); err != nil {
				log.Error("overlay: program peers", "err", err)
			} else {
				log.Debug("overlay: peers programmed", "peers", len(peers))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-resync.C:
		}
	}
}
