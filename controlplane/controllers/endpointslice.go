package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

const (
	// ManagedBy is the endpointslice.kubernetes.io/managed-by value on the
	// slices this controller owns (upstream's, so tools recognise them).
	ManagedBy          = "endpointslice-controller.k8s.io"
	labelSkipMirror    = "endpointslice.kubernetes.io/skip-mirror"
	labelHeadless      = corev1.IsHeadlessService
	defaultMaxPerSlice = 100
	zoneLabel          = corev1.LabelTopologyZone
)

// endpointSliceController publishes the pods selected by each Service as
// EndpointSlices (and the legacy Endpoints object).
type endpointSliceController struct {
	client      kubernetes.Interface
	log         *slog.Logger
	svcLister   corelisters.ServiceLister
	podLister   corelisters.PodLister
	nodeLister  corelisters.NodeLister
	epLister    corelisters.EndpointsLister
	sliceLister discoverylisters.EndpointSliceLister
	queue       queue
	maxPerSlice int
	synced      []toolscache.InformerSynced
}

func newEndpointSliceController(client kubernetes.Interface, f informers.SharedInformerFactory, maxPerSlice int, log *slog.Logger) *endpointSliceController {
	if maxPerSlice <= 0 {
		maxPerSlice = defaultMaxPerSlice
	}
	svc := f.Core().V1().Services()
	pods := f.Core().V1().Pods()
	nodes := f.Core().V1().Nodes()
	eps := f.Core().V1().Endpoints()
	slices := f.Discovery().V1().EndpointSlices()
	c := &endpointSliceController{
		client: client, log: log.With("controller", "endpointslice"),
		svcLister: svc.Lister(), podLister: pods.Lister(), nodeLister: nodes.Lister(),
		epLister: eps.Lister(), sliceLister: slices.Lister(),
		queue: newQueue("endpointslice"), maxPerSlice: maxPerSlice,
	}
	enqueue := func(o any) { c.queue.Add(keyOf(o)) }
	svc.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, n any) { enqueue(n) }, DeleteFunc: enqueue,
	})
	pods.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { c.podChanged(o.(*corev1.Pod), nil) },
		UpdateFunc: func(o, n any) {
			op, np := o.(*corev1.Pod), n.(*corev1.Pod)
			if op.ResourceVersion != np.ResourceVersion {
				c.podChanged(np, op)
			}
		},
		DeleteFunc: func(o any) {
			if p, ok := unwrap(o).(*corev1.Pod); ok {
				c.podChanged(p, nil)
			}
		},
	})
	sliceEvent := func(o any) {
		s, ok := unwrap(o).(*discoveryv1.EndpointSlice)
		if !ok || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels[discoveryv1.LabelServiceName] == "" {
			return
		}
		c.queue.Add(s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName])
	}
	slices.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: sliceEvent, UpdateFunc: func(_, n any) { sliceEvent(n) }, DeleteFunc: sliceEvent,
	})
	eps.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: enqueue})
	c.synced = []toolscache.InformerSynced{svc.Informer().HasSynced, pods.Informer().HasSynced, nodes.Informer().HasSynced,
		eps.Informer().HasSynced, slices.Informer().HasSynced}
	return c
}

func (c *endpointSliceController) podChanged(p, old *corev1.Pod) {
	svcs, _ := c.svcLister.Services(p.Namespace).List(labels.Everything())
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		if sel.Matches(labels.Set(p.Labels)) || (old != nil && sel.Matches(labels.Set(old.Labels))) {
			c.queue.Add(p.Namespace + "/" + s.Name)
		}
	}
}

func (c *endpointSliceController) run(ctx context.Context, workers int) {
	if !toolscache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	runWorkers(ctx, c.log, "endpointslice", c.queue, workers, c.sync)
}

// desiredEndpoint is one pod address with the ports it resolves to.
type desiredEndpoint struct {
	ep      discoveryv1.Endpoint
	portKey string
	ports   []discoveryv1.EndpointPort
	pod     *corev1.Pod
}

func (c *endpointSliceController) sync(ctx context.Context, key string) error {
	ns, name, _ := toolscache.SplitMetaNamespaceKey(key)
	svc, err := c.svcLister.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return c.deleteAll(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	// A Service without a selector keeps whatever slices and Endpoints its
	// user (or the API server, for `kubernetes`) maintains.
	if len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	pods, err := c.podLister.Pods(ns).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	var errs []string
	for _, fam := range families {
		at := discoveryv1.AddressTypeIPv4
		if fam == corev1.IPv6Protocol {
			at = discoveryv1.AddressTypeIPv6
		}
		if err := c.reconcileSlices(ctx, svc, at, c.desired(svc, pods, fam)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if err := c.syncEndpoints(ctx, svc, pods); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("sync endpoints of service %s: %s", key, strings.Join(errs, "; "))
	}
	return nil
}

func podIPOf(p *corev1.Pod, fam corev1.IPFamily) string {
	ips := []string{p.Status.PodIP}
	for _, x := range p.Status.PodIPs {
		ips = append(ips, x.IP)
	}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		if (ip.To4() != nil) == (fam != corev1.IPv6Protocol) {
			return s
		}
	}
	return ""
}

// resolvePort finds the pod port a service port targets (a named targetPort
// is looked up in the pod's containers, so it may differ per pod).
func resolvePort(p *corev1.Pod, sp *corev1.ServicePort) (int32, bool) {
	tp := sp.TargetPort
	if tp.Type == intstr.String && tp.StrVal != "" {
		for _, ct := range p.Spec.Containers {
			for _, cp := range ct.Ports {
				if cp.Name == tp.StrVal && (cp.Protocol == sp.Protocol || (cp.Protocol == "" && (sp.Protocol == "" || sp.Protocol == corev1.ProtocolTCP))) {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	}
	if tp.IntVal != 0 {
		return tp.IntVal, true
	}
	return sp.Port, true
}

func (c *endpointSliceController) desired(svc *corev1.Service, pods []*corev1.Pod, fam corev1.IPFamily) []desiredEndpoint {
	var out []desiredEndpoint
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ip := podIPOf(p, fam)
		if ip == "" {
			continue
		}
		podReady := isPodReady(p)
		terminating := p.DeletionTimestamp != nil
		ready := svc.Spec.PublishNotReadyAddresses || (podReady && !terminating)
		serving := svc.Spec.PublishNotReadyAddresses || podReady
		ep := discoveryv1.Endpoint{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		}
		if p.Spec.NodeName != "" {
			n := p.Spec.NodeName
			ep.NodeName = &n
			if node, err := c.nodeLister.Get(n); err == nil {
				if z, ok := node.Labels[zoneLabel]; ok {
					ep.Zone = &z
				}
			}
		}
		if p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name {
			h := p.Spec.Hostname
			ep.Hostname = &h
		}
		var ports []discoveryv1.EndpointPort
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			port, ok := resolvePort(p, sp)
			if !ok {
				continue
			}
			name, proto := sp.Name, sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ports = append(ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto, AppProtocol: sp.AppProtocol})
		}
		out = append(out, desiredEndpoint{ep: ep, ports: ports, portKey: portsKey(ports), pod: p})
	}
	return out
}

func portsKey(ports []discoveryv1.EndpointPort) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		ap := ""
		if p.AppProtocol != nil {
			ap = *p.AppProtocol
		}
		parts[i] = fmt.Sprintf("%s/%d/%s/%s", deref(p.Name), deref(p.Port), deref(p.Protocol), ap)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

func epKey(e *discoveryv1.Endpoint) string {
	if e.TargetRef != nil {
		return string(e.TargetRef.UID) + "/" + strings.Join(e.Addresses, ",")
	}
	return strings.Join(e.Addresses, ",")
}

func (c *endpointSliceController) sliceLabels(svc *corev1.Service) map[string]string {
	l := map[string]string{}
	for k, v := range svc.Labels {
		l[k] = v
	}
	l[discoveryv1.LabelServiceName] = svc.Name
	l[discoveryv1.LabelManagedBy] = ManagedBy
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[labelHeadless] = ""
	} else {
		delete(l, labelHeadless)
	}
	return l
}

// reconcileSlices keeps each endpoint in the slice it already sits in, fills
// free room before creating slices, and deletes slices left empty, so one
// pod change touches one slice.
func (c *endpointSliceController) reconcileSlices(ctx context.Context, svc *corev1.Service, at discoveryv1.AddressType, want []desiredEndpoint) error {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: ManagedBy})
	existingAll, err := c.sliceLister.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return err
	}
	var existing []*discoveryv1.EndpointSlice
	for _, s := range existingAll {
		if s.AddressType == at && s.DeletionTimestamp == nil {
			existing = append(existing, s)
		}
	}
	sort.Slice(existing, func(i, j int) bool { return existing[i].Name < existing[j].Name })

	groups := map[string][]desiredEndpoint{}
	groupPorts := map[string][]discoveryv1.EndpointPort{}
	for _, d := range want {
		groups[d.portKey] = append(groups[d.portKey], d)
		groupPorts[d.portKey] = d.ports
	}
	lbls := c.sliceLabels(svc)
	ownerRef := ownerRefFor(svc, "v1", "Service")
	type plan struct {
		orig      *discoveryv1.EndpointSlice // nil: to create
		ports     []discoveryv1.EndpointPort
		endpoints []discoveryv1.Endpoint
	}
	var plans []*plan
	placed := map[string]bool{}
	byKey := map[string]map[string]discoveryv1.Endpoint{}
	for k, g := range groups {
		byKey[k] = map[string]discoveryv1.Endpoint{}
		for _, d := range g {
			byKey[k][epKey(&d.ep)] = d.ep
		}
	}
	var stale []*discoveryv1.EndpointSlice
	for _, s := range existing {
		k := portsKey(s.Ports)
		eps, ok := byKey[k]
		if !ok {
			stale = append(stale, s)
			continue
		}
		p := &plan{orig: s, ports: groupPorts[k]}
		for i := range s.Endpoints {
			ek := epKey(&s.Endpoints[i])
			if e, ok := eps[ek]; ok && !placed[k+"|"+ek] && len(p.endpoints) < c.maxPerSlice {
				p.endpoints = append(p.endpoints, e)
				placed[k+"|"+ek] = true
			}
		}
		plans = append(plans, p)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := groups[k]
		sort.Slice(g, func(i, j int) bool { return epKey(&g[i].ep) < epKey(&g[j].ep) })
		for _, d := range g {
			ek := epKey(&d.ep)
			if placed[k+"|"+ek] {
				continue
			}
			placed[k+"|"+ek] = true
			var target *plan
			for _, p := range plans {
				if portsKey(p.ports) == k && len(p.endpoints) < c.maxPerSlice {
					target = p
					break
				}
			}
			if target == nil {
				target = &plan{ports: groupPorts[k]}
				plans = append(plans, target)
			}
			target.endpoints = append(target.endpoints, d.ep)
		}
	}
	// Slices left empty go, except one placeholder when there is nothing at all.
	var keep []*plan
	for _, p := range plans {
		if len(p.endpoints) == 0 && p.orig != nil {
			stale = append(stale, p.orig)
			continue
		}
		keep = append(keep, p)
	}
	if len(keep) == 0 {
		if len(stale) > 0 && len(stale[0].Ports) == 0 && len(stale[0].Endpoints) == 0 {
			keep = append(keep, &plan{orig: stale[0]})
			stale = stale[1:]
		} else {
			keep = append(keep, &plan{})
		}
	}
	var errs []string
	for _, p := range keep {
		sort.Slice(p.endpoints, func(i, j int) bool { return epKey(&p.endpoints[i]) < epKey(&p.endpoints[j]) })
		if p.endpoints == nil {
			p.endpoints = []discoveryv1.Endpoint{}
		}
		if p.orig == nil {
			s := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Name: randName(svc.Name + "-"), Namespace: svc.Namespace, Labels: lbls,
					OwnerReferences: []metav1.OwnerReference{ownerRef}},
				AddressType: at, Endpoints: p.endpoints, Ports: p.ports,
			}
			if _, err := c.client.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
				errs = append(errs, fmt.Sprintf("create endpointslice: %v", err))
			}
			continue
		}
		if reflect.DeepEqual(p.orig.Endpoints, p.endpoints) && reflect.DeepEqual(normPorts(p.orig.Ports), normPorts(p.ports)) && reflect.DeepEqual(p.orig.Labels, lbls) {
			continue
		}
		cp := p.orig.DeepCopy()
		cp.Endpoints, cp.Ports, cp.Labels = p.endpoints, p.ports, lbls
		if _, err := c.client.DiscoveryV1().EndpointSlices(svc.Namespace).Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Sprintf("update endpointslice %s: %v", cp.Name, err))
		}
	}
	for _, s := range stale {
		if err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Sprintf("delete endpointslice %s: %v", s.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func normPorts(p []discoveryv1.EndpointPort) []discoveryv1.EndpointPort {
	if len(p) == 0 {
		return nil
	}
	return p
}

func (c *endpointSliceController) deleteAll(ctx context.Context, ns, name string) error {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ManagedBy})
	slices, err := c.sliceLister.EndpointSlices(ns).List(sel)
	if err != nil {
		return err
	}
	for _, s := range slices {
		if err := c.client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpointslice %s/%s: %w", ns, s.Name, err)
		}
	}
	if ep, err := c.epLister.Endpoints(ns).Get(name); err == nil && ep.Labels[labelSkipMirror] == "true" {
		if err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpoints %s/%s: %w", ns, name, err)
		}
	}
	return nil
}

// syncEndpoints maintains the legacy v1 Endpoints: ready addresses, not-ready
// addresses, one subset per distinct port set; terminating pods are left out
// (unless publishNotReadyAddresses), as upstream.
func (c *endpointSliceController) syncEndpoints(ctx context.Context, svc *corev1.Service, pods []*corev1.Pod) error {
	type subset struct {
		ports          []corev1.EndpointPort
		ready, unready []corev1.EndpointAddress
	}
	subsets := map[string]*subset{}
	fam := corev1.IPv4Protocol
	if len(svc.Spec.IPFamilies) > 0 {
		fam = svc.Spec.IPFamilies[0]
	}
	for _, d := range c.desired(svc, pods, fam) {
		if d.pod.DeletionTimestamp != nil && !svc.Spec.PublishNotReadyAddresses {
			continue
		}
		if len(d.ports) == 0 && svc.Spec.ClusterIP != corev1.ClusterIPNone {
			continue
		}
		s, ok := subsets[d.portKey]
		if !ok {
			s = &subset{}
			for _, p := range d.ports {
				s.ports = append(s.ports, corev1.EndpointPort{Name: deref(p.Name), Port: deref(p.Port), Protocol: deref(p.Protocol), AppProtocol: p.AppProtocol})
			}
			sort.Slice(s.ports, func(i, j int) bool { return s.ports[i].Name < s.ports[j].Name })
			subsets[d.portKey] = s
		}
		a := corev1.EndpointAddress{IP: d.ep.Addresses[0], NodeName: d.ep.NodeName, TargetRef: d.ep.TargetRef}
		if d.ep.Hostname != nil {
			a.Hostname = *d.ep.Hostname
		}
		if *d.ep.Conditions.Ready {
			s.ready = append(s.ready, a)
		} else {
			s.unready = append(s.unready, a)
		}
	}
	keys := make([]string, 0, len(subsets))
	for k := range subsets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []corev1.EndpointSubset
	for _, k := range keys {
		s := subsets[k]
		sort.Slice(s.ready, func(i, j int) bool { return s.ready[i].IP < s.ready[j].IP })
		sort.Slice(s.unready, func(i, j int) bool { return s.unready[i].IP < s.unready[j].IP })
		out = append(out, corev1.EndpointSubset{Addresses: s.ready, NotReadyAddresses: s.unready, Ports: s.ports})
	}
	lbls := map[string]string{}
	for k, v := range svc.Labels {
		lbls[k] = v
	}
	lbls[labelSkipMirror] = "true"
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		lbls[labelHeadless] = ""
	}
	cur, err := c.epLister.Endpoints(svc.Namespace).Get(svc.Name)
	if apierrors.IsNotFound(err) {
		ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: lbls}, Subsets: out}
		if _, err := c.client.CoreV1().Endpoints(svc.Namespace).Create(ctx, ep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create endpoints: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if reflect.DeepEqual(normSubsets(cur.Subsets), normSubsets(out)) && reflect.DeepEqual(cur.Labels, lbls) {
		return nil
	}
	cp := cur.DeepCopy()
	cp.Subsets, cp.Labels = out, lbls
	if _, err := c.client.CoreV1().Endpoints(svc.Namespace).Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update endpoints: %w", err)
	}
	return nil
}

func normSubsets(s []corev1.EndpointSubset) []corev1.EndpointSubset {
	if len(s) == 0 {
		return nil
	}
	out := make([]corev1.EndpointSubset, len(s))
	for i, x := range s {
		if len(x.Addresses) == 0 {
			x.Addresses = nil
		}
		if len(x.NotReadyAddresses) == 0 {
			x.NotReadyAddresses = nil
		}
		if len(x.Ports) == 0 {
			x.Ports = nil
		}
		out[i] = x
	}
	return out
}
