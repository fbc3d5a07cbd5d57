package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiffnet/skiff/controlplane/apiserver"
	"github.com/skiffnet/skiff/controlplane/storage"
)

// The `kubernetes` Service points at every live API server, as kube-apiserver's lease
// endpoint reconciler does: each server renews a Lease in kube-system naming its address,
// and any server rewrites the Endpoints and EndpointSlices of `kubernetes` from the live
// Leases. A server that stops cleanly removes itself at once; one that dies drops out when
// its Lease has not been renewed for apiserverLeaseDuration.
const (
	apiserverLeaseLabel = "skiff.io/apiserver-endpoint"
	kubernetesSliceName = "kubernetes"
	endpointManagedBy   = "skiff-apiserver"
)

// Tunables (variables so tests can shorten them).
var (
	apiserverLeaseDuration = 15 * time.Second
	apiserverLeaseRenew    = 5 * time.Second
)

type endpointReconciler struct {
	api   *apiserver.Server
	store storage.Interface
	ip    string
	port  int32
	name  string // of this server's Lease

	mu   sync.Mutex
	seen map[string]leaseSeen // lease name -> when this server saw its resourceVersion change
}

type leaseSeen struct {
	rv string
	at time.Time
}

func newEndpointReconciler(api *apiserver.Server, ip net.IP, port int32) *endpointReconciler {
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
	sum := sha256.Sum256([]byte(addr))
	return &endpointReconciler{api: api, store: api.Storage(), ip: ip.String(), port: port,
		name: "skiff-apiserver-" + hex.EncodeToString(sum[:])[:16], seen: map[string]leaseSeen{}}
}

// renew writes this server's Lease and reconciles the endpoints.
func (e *endpointReconciler) renew(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	holder := net.JoinHostPort(e.ip, strconv.Itoa(int(e.port)))
	secs := int32(apiserverLeaseDuration / time.Second)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: e.name, Namespace: metav1.NamespaceSystem, Labels: map[string]string{apiserverLeaseLabel: "true"},
			Annotations: map[string]string{"skiff.io/address": e.ip, "skiff.io/port": strconv.Itoa(int(e.port))}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now},
	}
	if err := e.api.Ensure(ctx, lease, true); err != nil {
		return fmt.Errorf("renew API server lease: %w", err)
	}
	return e.reconcile(ctx, "")
}

// remove drops this server from the endpoints (clean shutdown).
func (e *endpointReconciler) remove(ctx context.Context) error {
	out := &coordinationv1.Lease{}
	if err := e.store.Delete(ctx, "/registry/leases/"+metav1.NamespaceSystem+"/"+e.name, out, nil); err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("delete API server lease: %w", err)
	}
	return e.reconcile(ctx, e.name)
}

type apiEndpoint struct {
	ip   string
	port int32
}

// live lists the addresses of the servers whose Leases were renewed within the lease
// duration, as this server observed it (a resourceVersion change), so clocks need not
// agree; expired Leases are deleted. skip names a Lease to leave out.
func (e *endpointReconciler) live(ctx context.Context, skip string) ([]apiEndpoint, error) {
	list := &coordinationv1.LeaseList{}
	sel := labels.SelectorFromSet(labels.Set{apiserverLeaseLabel: "true"})
	if err := e.store.List(ctx, "/registry/leases/"+metav1.NamespaceSystem+"/", storage.ListOptions{Predicate: storage.Predicate{Label: sel}}, list); err != nil {
		return nil, fmt.Errorf("list API server leases: %w", err)
	}
	now := time.Now()
	var out []apiEndpoint
	e.mu.Lock()
	defer e.mu.Unlock()
	present := map[string]bool{}
	for i := range list.Items {
		l := &list.Items[i]
		present[l.Name] = true
		s, ok := e.seen[l.Name]
		if !ok || s.rv != l.ResourceVersion {
			s = leaseSeen{rv: l.ResourceVersion, at: now}
			e.seen[l.Name] = s
		}
		if l.Name == skip {
			continue
		}
		if l.Name != e.name && now.Sub(s.at) > apiserverLeaseDuration {
			rv := l.ResourceVersion
			err := e.store.Delete(ctx, "/registry/leases/"+l.Namespace+"/"+l.Name, &coordinationv1.Lease{}, &storage.Preconditions{ResourceVersion: &rv})
			if err != nil && !storage.IsNotFound(err) && !storage.IsConflict(err) {
				slog.Warn("delete expired API server lease", "lease", l.Name, "err", err)
			}
			continue
		}
		ip := l.Annotations["skiff.io/address"]
		port, err := strconv.ParseInt(l.Annotations["skiff.io/port"], 10, 32)
		if net.ParseIP(ip) == nil || err != nil {
			continue
		}
		out = append(out, apiEndpoint{ip: ip, port: int32(port)})
	}
	for name := range e.seen {
		if !present[name] {
			delete(e.seen, name)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].port != out[j].port {
			return out[i].port < out[j].port
		}
		return out[i].ip < out[j].ip
	})
	return out, nil
}

func (e *endpointReconciler) reconcile(ctx context.Context, skip string) error {
	eps, err := e.live(ctx, skip)
	if err != nil {
		return err
	}
	// One subset and one slice per port (the servers of a cluster normally share one).
	byPort := map[int32][]string{}
	var ports []int32
	for _, ep := range eps {
		if _, ok := byPort[ep.port]; !ok {
			ports = append(ports, ep.port)
		}
		byPort[ep.port] = append(byPort[ep.port], ep.ip)
	}
	endpoints := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
		Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}}}
	for _, p := range ports {
		ss := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "https", Port: p, Protocol: corev1.ProtocolTCP}}}
		for _, ip := range byPort[p] {
			ss.Addresses = append(ss.Addresses, corev1.EndpointAddress{IP: ip})
		}
		endpoints.Subsets = append(endpoints.Subsets, ss)
	}
	if err := e.api.Ensure(ctx, endpoints, true); err != nil {
		return fmt.Errorf("kubernetes endpoints: %w", err)
	}
	want := map[string]bool{}
	for i, p := range ports {
		name := kubernetesSliceName
		if i > 0 {
			name = fmt.Sprintf("%s-%d", kubernetesSliceName, p)
		}
		for _, at := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
			var addrs []discoveryv1.Endpoint
			for _, ip := range byPort[p] {
				if addressType(ip) == at {
					addrs = append(addrs, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}})
				}
			}
			if len(addrs) == 0 {
				continue
			}
			n := name
			if at == discoveryv1.AddressTypeIPv6 {
				n += "-ipv6"
			}
			want[n] = true
			slice := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: metav1.NamespaceDefault, Labels: map[string]string{
					discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: endpointManagedBy}},
				AddressType: at,
				Endpoints:   addrs,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr(p), Protocol: ptr(corev1.ProtocolTCP)}},
			}
			if err := e.api.Ensure(ctx, slice, true); err != nil {
				return fmt.Errorf("kubernetes endpointslice %s: %w", n, err)
			}
		}
	}
	// Slices of ports no server listens on any more go.
	list := &discoveryv1.EndpointSliceList{}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: endpointManagedBy})
	if err := e.store.List(ctx, "/registry/endpointslices/"+metav1.NamespaceDefault+"/", storage.ListOptions{Predicate: storage.Predicate{Label: sel}}, list); err != nil {
		return fmt.Errorf("list kubernetes endpointslices: %w", err)
	}
	for i := range list.Items {
		sl := &list.Items[i]
		if want[sl.Name] || (sl.Name == kubernetesSliceName && len(want) == 0) {
			continue
		}
		rv := sl.ResourceVersion
		if err := e.store.Delete(ctx, "/registry/endpointslices/"+sl.Namespace+"/"+sl.Name, &discoveryv1.EndpointSlice{}, &storage.Preconditions{ResourceVersion: &rv}); err != nil && !storage.IsNotFound(err) && !storage.IsConflict(err) {
			return fmt.Errorf("delete stale endpointslice %s: %w", sl.Name, err)
		}
	}
	// With no server left, the last slice is emptied rather than deleted.
	if len(want) == 0 {
		empty := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: kubernetesSliceName, Namespace: metav1.NamespaceDefault, Labels: map[string]string{
				discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: endpointManagedBy}},
			AddressType: addressType(e.ip),
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr(e.port), Protocol: ptr(corev1.ProtocolTCP)}},
		}
		if err := e.api.Ensure(ctx, empty, true); err != nil {
			return fmt.Errorf("kubernetes endpointslice: %w", err)
		}
	}
	return nil
}

// run renews until ctx ends, then removes this server from the endpoints.
func (e *endpointReconciler) run(ctx context.Context) {
	t := time.NewTicker(apiserverLeaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.remove(c); err != nil {
				slog.Warn("remove this API server from the kubernetes endpoints", "err", err)
			}
			return
		case <-t.C:
			if err := e.renew(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("kubernetes service endpoints", "err", err)
			}
		}
	}
}
