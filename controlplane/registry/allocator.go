package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiffnet/skiff/controlplane/storage"
)

// Keys of the allocation bitmaps in etcd.
const (
	ServiceIPsKey   = "/registry/ranges/serviceips"
	NodePortsKey    = "/registry/ranges/servicenodeports"
	maxServiceRange = 1 << 20 // like Kubernetes: at most 2^20 addresses of a big (IPv6) prefix
)

// Allocator hands out ClusterIPs and NodePorts for Services.
type Allocator struct {
	CIDR      netip.Prefix
	PortBase  int
	PortSize  int
	ips       *Range
	ports     *Range
	ipsReserv map[int]bool // offsets only a service that asks for them gets (.1 and .10)
}

// ParsePortRange reads "30000-32767".
func ParsePortRange(s string) (base, size int, err error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("node port range %q: want FIRST-LAST within 1-65535, like 30000-32767", s)
	}
	return lo, hi - lo + 1, nil
}

// NewAllocator makes the allocator for a service CIDR and a node port range "A-B".
func NewAllocator(store storage.Interface, cidr netip.Prefix, portRange string) (*Allocator, error) {
	cidr = cidr.Masked()
	bits := cidr.Addr().BitLen() - cidr.Bits()
	if bits < 4 {
		return nil, fmt.Errorf("service CIDR %s is too small: use at most a /28 (default 10.96.0.0/12)", cidr)
	}
	size := maxServiceRange
	if bits < 20 {
		size = 1 << bits
	}
	base, psize, err := ParsePortRange(portRange)
	if err != nil {
		return nil, err
	}
	a := &Allocator{
		CIDR: cidr, PortBase: base, PortSize: psize,
		ips:       NewRange(store, ServiceIPsKey, cidr.String(), size),
		ports:     NewRange(store, NodePortsKey, portRange, psize),
		ipsReserv: map[int]bool{1: true, 10: true},
	}
	return a, nil
}

// Init creates the bitmaps in etcd if needed.
func (a *Allocator) Init(ctx context.Context) error {
	if err := a.ips.Init(ctx); err != nil {
		return err
	}
	return a.ports.Init(ctx)
}

// IPAt returns the address at offset i of the service CIDR (1 = the kubernetes service,
// 10 = cluster DNS).
func (a *Allocator) IPAt(i int) netip.Addr {
	n := new(big.Int).SetBytes(a.CIDR.Addr().AsSlice())
	n.Add(n, big.NewInt(int64(i)))
	b := n.FillBytes(make([]byte, a.CIDR.Addr().BitLen()/8))
	ip, _ := netip.AddrFromSlice(b)
	return ip
}

func (a *Allocator) offsetOf(ip netip.Addr) int {
	if !a.CIDR.Contains(ip) {
		return -1
	}
	n := new(big.Int).SetBytes(ip.AsSlice())
	n.Sub(n, new(big.Int).SetBytes(a.CIDR.Addr().AsSlice()))
	if !n.IsInt64() || n.Int64() >= int64(a.ips.size) {
		return -1
	}
	i := int(n.Int64())
	if i == 0 || (ip.Is4() && i == a.ips.size-1 && a.CIDR.Bits() > 32-20) {
		return -1 // network and broadcast addresses
	}
	return i
}

// Txn records what one create or update allocated, so that a failed write gives it back.
type Txn struct {
	a     *Allocator
	ips   []int
	ports []int
}

// NewTxn starts an allocation transaction.
func (a *Allocator) NewTxn() *Txn { return &Txn{a: a} }

// Rollback releases everything the transaction allocated.
func (t *Txn) Rollback(ctx context.Context) {
	for _, i := range t.ips {
		if err := t.a.ips.Release(ctx, i); err != nil {
			slog.Warn("release service IP after failed write", "ip", t.a.IPAt(i), "err", err)
		}
	}
	for _, i := range t.ports {
		if err := t.a.ports.Release(ctx, i); err != nil {
			slog.Warn("release node port after failed write", "port", t.a.PortBase+i, "err", err)
		}
	}
	t.ips, t.ports = nil, nil
}

func needsNodePorts(s *corev1.Service) bool {
	switch s.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return s.Spec.AllocateLoadBalancerNodePorts == nil || *s.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

func needsHealthCheckPort(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// Allocate gives svc the ClusterIP and node ports it needs and does not already hold in old
// (nil on create). Requested values are honoured or refused with 422 causes. With dryRun the
// requested values are only checked and nothing is allocated.
func (t *Txn) Allocate(ctx context.Context, svc, old *corev1.Service, dryRun bool) (field.ErrorList, error) {
	a := t.a
	var errs field.ErrorList
	held := func(ip string) bool { return old != nil && old.Spec.ClusterIP == ip && ip != "" }
	sp := field.NewPath("spec")
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	case svc.Spec.ClusterIP == "":
		if dryRun {
			break
		}
		i, err := a.ips.AllocateNext(ctx, func(i int) bool { return i == 0 || a.ipsReserv[i] || a.offsetOf(a.IPAt(i)) < 0 })
		if err != nil {
			if errors.Is(err, ErrFull) {
				return nil, fmt.Errorf("allocate a ClusterIP: service range %s is full", a.CIDR)
			}
			return nil, fmt.Errorf("allocate a ClusterIP: %w", err)
		}
		t.ips = append(t.ips, i)
		svc.Spec.ClusterIP = a.IPAt(i).String()
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	case !held(svc.Spec.ClusterIP):
		ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		i := -1
		if err == nil {
			i = a.offsetOf(ip)
		}
		if i < 0 {
			errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), svc.Spec.ClusterIP,
				fmt.Sprintf("failed to allocate IP %s: the provided IP is not in the valid range. The range of valid IPs is %s", svc.Spec.ClusterIP, a.CIDR)))
			break
		}
		if dryRun {
			if has, err := a.ips.Has(ctx, i); err != nil {
				return nil, err
			} else if has {
				errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP)))
			}
			break
		}
		if err := a.ips.Allocate(ctx, i); err != nil {
			if errors.Is(err, ErrAllocated) {
				errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP)))
				break
			}
			return nil, fmt.Errorf("allocate ClusterIP %s: %w", svc.Spec.ClusterIP, err)
		}
		t.ips = append(t.ips, i)
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	default:
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}

	oldPorts := map[int32]bool{}
	if old != nil {
		for _, p := range usedPorts(old) {
			oldPorts[p] = true
		}
	}
	mine := map[int32]bool{} // ports this service already got in this call (TCP+UDP may share)
	alloc := func(port *int32, p *field.Path) error {
		if *port != 0 && (oldPorts[*port] || mine[*port]) {
			return nil
		}
		if *port == 0 {
			if dryRun {
				return nil
			}
			i, err := a.ports.AllocateNext(ctx, func(int) bool { return false })
			if err != nil {
				if errors.Is(err, ErrFull) {
					return fmt.Errorf("allocate a node port: range %d-%d is full", a.PortBase, a.PortBase+a.PortSize-1)
				}
				return fmt.Errorf("allocate a node port: %w", err)
			}
			t.ports = append(t.ports, i)
			*port = int32(a.PortBase + i)
			mine[*port] = true
			return nil
		}
		i := int(*port) - a.PortBase
		if i < 0 || i >= a.PortSize {
			errs = append(errs, field.Invalid(p, *port, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.PortBase, a.PortBase+a.PortSize-1)))
			return nil
		}
		var err error
		if dryRun {
			var has bool
			if has, err = a.ports.Has(ctx, i); err == nil && has {
				err = ErrAllocated
			}
		} else {
			err = a.ports.Allocate(ctx, i)
		}
		if errors.Is(err, ErrAllocated) {
			errs = append(errs, field.Invalid(p, *port, "provided port is already allocated"))
			return nil
		}
		if err != nil {
			return fmt.Errorf("allocate node port %d: %w", *port, err)
		}
		if !dryRun {
			t.ports = append(t.ports, i)
		}
		mine[*port] = true
		return nil
	}
	if needsNodePorts(svc) {
		for i := range svc.Spec.Ports {
			if err := alloc(&svc.Spec.Ports[i].NodePort, sp.Child("ports").Index(i).Child("nodePort")); err != nil {
				return nil, err
			}
		}
	}
	if needsHealthCheckPort(svc) {
		if err := alloc(&svc.Spec.HealthCheckNodePort, sp.Child("healthCheckNodePort")); err != nil {
			return nil, err
		}
	} else {
		svc.Spec.HealthCheckNodePort = 0
	}
	return errs, nil
}

func usedPorts(s *corev1.Service) []int32 {
	var out []int32
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			out = append(out, p.NodePort)
		}
	}
	if s.Spec.HealthCheckNodePort != 0 {
		out = append(out, s.Spec.HealthCheckNodePort)
	}
	return out
}

func (a *Allocator) ipOffset(s *corev1.Service) int {
	if s == nil || s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
		return -1
	}
	ip, err := netip.ParseAddr(s.Spec.ClusterIP)
	if err != nil {
		return -1
	}
	return a.offsetOf(ip)
}

// ReleaseUnused frees what old held and now (nil after a delete) does not.
func (a *Allocator) ReleaseUnused(ctx context.Context, old, now *corev1.Service) {
	if i := a.ipOffset(old); i >= 0 && a.ipOffset(now) != i {
		if err := a.ips.Release(ctx, i); err != nil {
			slog.Warn("release service IP", "ip", old.Spec.ClusterIP, "err", err)
		}
	}
	keep := map[int32]bool{}
	if now != nil {
		for _, p := range usedPorts(now) {
			keep[p] = true
		}
	}
	for _, p := range usedPorts(old) {
		if keep[p] {
			continue
		}
		keep[p] = true // a port shared by TCP and UDP entries is released once
		if err := a.ports.Release(ctx, int(p)-a.PortBase); err != nil {
			slog.Warn("release node port", "port", p, "err", err)
		}
	}
}

// Repair rebuilds both bitmaps from the services that exist, freeing allocations whose
// service is gone (a crash between allocation and create) and re-marking any that are
// missing. Run it before serving.
func (a *Allocator) Repair(ctx context.Context, svcs []corev1.Service) error {
	var ips, ports []int
	for i := range svcs {
		s := &svcs[i]
		if o := a.ipOffset(s); o >= 0 {
			ips = append(ips, o)
		} else if s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
			slog.Warn("service IP outside the service CIDR", "service", s.Namespace+"/"+s.Name, "ip", s.Spec.ClusterIP, "cidr", a.CIDR)
		}
		for _, p := range usedPorts(s) {
			ports = append(ports, int(p)-a.PortBase)
		}
	}
	if err := a.ips.Reset(ctx, ips); err != nil {
		return fmt.Errorf("repair service IPs: %w", err)
	}
	if err := a.ports.Reset(ctx, ports); err != nil {
		return fmt.Errorf("repair node ports: %w", err)
	}
	return nil
}

// carryServiceAllocations keeps the ClusterIP and node ports of old in an update that leaves
// them empty (kubectl apply and PUTs of a manifest do), and drops the values that the new
// type does not use.
func carryServiceAllocations(s, old *corev1.Service) {
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
	} else if old.Spec.Type != corev1.ServiceTypeExternalName {
		if s.Spec.ClusterIP == "" && len(s.Spec.ClusterIPs) > 0 {
			s.Spec.ClusterIP = s.Spec.ClusterIPs[0]
		}
		if s.Spec.ClusterIP == "" {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
		}
		if len(s.Spec.ClusterIPs) == 0 && s.Spec.ClusterIP != "" {
			s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		}
	}
	if !needsNodePorts(s) {
		if !needsNodePorts(old) || portsUnchanged(s, old) {
			for i := range s.Spec.Ports {
				s.Spec.Ports[i].NodePort = 0
			}
		}
	} else if needsNodePorts(old) {
		for i := range s.Spec.Ports {
			p := &s.Spec.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			for _, op := range old.Spec.Ports {
				if op.Port == p.Port && op.Protocol == p.Protocol {
					p.NodePort = op.NodePort
				}
			}
		}
	}
	if needsHealthCheckPort(s) && s.Spec.HealthCheckNodePort == 0 {
		s.Spec.HealthCheckNodePort = old.Spec.HealthCheckNodePort
	}
}

func portsUnchanged(s, old *corev1.Service) bool {
	for _, p := range s.Spec.Ports {
		if p.NodePort == 0 {
			continue
		}
		found := false
		for _, op := range old.Spec.Ports {
			if op.NodePort == p.NodePort {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
