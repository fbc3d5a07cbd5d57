package kubelet

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffnet/skiff/dns"
	"github.com/skiffnet/skiff/overlay"
)

// The agent hosts the node's share of the cluster network besides its pods: the VXLAN
// overlay towards the other nodes and a cluster DNS server that the kube-dns Service reaches
// through every node's own EndpointSlice.

// startOverlay waits for the node's pod CIDR, then creates the VXLAN device, publishes its
// VTEP on the Node and keeps the routes to the other nodes in step with the API.
func (a *Agent) startOverlay(ctx context.Context) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		var cidr string
		for cidr == "" {
			if cidr = a.net.PodCIDR(); cidr != "" {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		_, podCIDR, err := net.ParseCIDR(cidr)
		if err != nil {
			a.log.Error("overlay: pod CIDR", "cidr", cidr, "err", err)
			return
		}
		var h *netlink.Handle
		if a.hostNS != nil {
			h, err = a.hostNS.Netlink()
		} else {
			h, err = netlink.NewHandle()
		}
		if err != nil {
			a.log.Error("overlay: netlink", "err", err)
			return
		}
		defer h.Close()
		ip := net.ParseIP(a.nodeIP)
		under, err := deviceWithIP(h, ip)
		if err != nil {
			a.log.Error("overlay: underlay device", "err", err)
			return
		}
		ov, err := overlay.New(h, overlay.DeviceConfig{LocalIP: ip, Underlay: under}, podCIDR)
		if err != nil {
			a.log.Error("overlay: device", "err", err)
			return
		}
		for {
			err := overlay.PublishVTEP(ctx, a.client, a.cfg.NodeName, ov.MAC(), ip)
			if err == nil {
				break
			}
			a.log.Warn("overlay: publish VTEP", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		a.log.Info("overlay up", "device", ov.Name(), "mac", ov.MAC(), "mtu", ov.MTU(), "podCIDR", cidr)
		if err := overlay.Run(ctx, a.client, a.cfg.NodeName, ov, a.log); err != nil && ctx.Err() == nil {
			a.log.Error("overlay stopped", "err", err)
		}
	}()
}

func deviceWithIP(h *netlink.Handle, ip net.IP) (string, error) {
	addrs, err := h.AddrList(nil, unix.AF_INET)
	if err != nil {
		return "", err
	}
	for _, ad := range addrs {
		if ad.IP.Equal(ip) {
			l, err := h.LinkByIndex(ad.LinkIndex)
			if err != nil {
				return "", err
			}
			return l.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("no device has the node IP %s: set --node-ip to an address of this node", ip)
}

// startDNS serves the cluster zone on the node IP and, once synced, publishes this node as an
// endpoint of the kube-dns Service.
func (a *Agent) startDNS(ctx context.Context) error {
	srv, err := dns.New(dns.Config{
		Client: a.client,
		Zone:   a.cfg.ClusterDomain,
		Listen: []string{net.JoinHostPort(a.nodeIP, "53")},
		Logger: a.log,
	})
	if err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		// The sockets are made in Run's goroutine: inside the node's netns.
		if err := a.inNodeNS(func() error { return srv.Run(ctx) }); err != nil && ctx.Err() == nil {
			a.log.Error("cluster DNS stopped", "err", err)
		}
	}()
	go func() {
		defer a.wg.Done()
		for !srv.Ready() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		for {
			err := a.publishDNSEndpoint(ctx)
			if err == nil {
				a.log.Info("cluster DNS ready and published", "addr", net.JoinHostPort(a.nodeIP, "53"))
				break
			}
			a.log.Warn("publish kube-dns endpoint", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		<-ctx.Done()
		// Leave the Service before going, so no query is sent to a stopped server.
		dctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		a.client.DiscoveryV1().EndpointSlices("kube-system").Delete(dctx, dnsSliceName(a.cfg.NodeName), metav1.DeleteOptions{})
	}()
	return nil
}

func dnsSliceName(node string) string { return "kube-dns-" + node }

func (a *Agent) publishDNSEndpoint(ctx context.Context) error {
	ready := true
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	port := int32(53)
	dnsName, tcpName := "dns", "dns-tcp"
	node := a.cfg.NodeName
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      dnsSliceName(node),
			Namespace: "kube-system",
			Labels: map[string]string{
				discoveryv1.LabelServiceName: "kube-dns",
				discoveryv1.LabelManagedBy:   "skiff-agent",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{a.nodeIP},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
			NodeName:   &node,
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: &dnsName, Protocol: &udp, Port: &port},
			{Name: &tcpName, Protocol: &tcp, Port: &port},
		},
	}
	slices := a.client.DiscoveryV1().EndpointSlices("kube-system")
	cur, err := slices.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = slices.Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	want.ResourceVersion = cur.ResourceVersion
	_, err = slices.Update(ctx, want, metav1.UpdateOptions{})
	return err
}
