package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

// table describes kubectl's columns for one kind. row gets the object converted to its type.
type table struct {
	headers []string
	wide    []string
	newObj  func() any
	row     func(obj any, now time.Time) (cells, wide []string)
}

var tables = map[schema.GroupKind]table{
	{Kind: "Pod"}: {
		headers: []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"},
		wide:    []string{"IP", "NODE"},
		newObj:  func() any { return &corev1.Pod{} },
		row:     podRow,
	},
	{Kind: "Service"}: {
		headers: []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"},
		wide:    []string{"SELECTOR"},
		newObj:  func() any { return &corev1.Service{} },
		row:     serviceRow,
	},
	{Group: "apps", Kind: "Deployment"}: {
		headers: []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"},
		wide:    []string{"CONTAINERS", "IMAGES", "SELECTOR"},
		newObj:  func() any { return &appsv1.Deployment{} },
		row:     deploymentRow,
	},
	{Group: "apps", Kind: "ReplicaSet"}: {
		headers: []string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"},
		wide:    []string{"CONTAINERS", "IMAGES", "SELECTOR"},
		newObj:  func() any { return &appsv1.ReplicaSet{} },
		row:     replicaSetRow,
	},
	{Kind: "ReplicationController"}: {
		headers: []string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"},
		wide:    []string{"CONTAINERS", "IMAGES", "SELECTOR"},
		newObj:  func() any { return &corev1.ReplicationController{} },
		row:     rcRow,
	},
	{Kind: "Node"}: {
		headers: []string{"NAME", "STATUS", "ROLES", "AGE", "VERSION"},
		wide:    []string{"INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"},
		newObj:  func() any { return &corev1.Node{} },
		row:     nodeRow,
	},
	{Kind: "Namespace"}: {
		headers: []string{"NAME", "STATUS", "AGE"},
		newObj:  func() any { return &corev1.Namespace{} },
		row: func(o any, now time.Time) ([]string, []string) {
			ns := o.(*corev1.Namespace)
			return []string{ns.Name, string(ns.Status.Phase), age(ns.CreationTimestamp, now)}, nil
		},
	},
	{Group: "discovery.k8s.io", Kind: "EndpointSlice"}: {
		headers: []string{"NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"},
		newObj:  func() any { return &discoveryv1.EndpointSlice{} },
		row:     endpointSliceRow,
	},
	{Kind: "Endpoints"}: {
		headers: []string{"NAME", "ENDPOINTS", "AGE"},
		newObj:  func() any { return &corev1.Endpoints{} },
		row:     endpointsRow,
	},
	{Kind: "ConfigMap"}: {
		headers: []string{"NAME", "DATA", "AGE"},
		newObj:  func() any { return &corev1.ConfigMap{} },
		row: func(o any, now time.Time) ([]string, []string) {
			cm := o.(*corev1.ConfigMap)
			return []string{cm.Name, strconv.Itoa(len(cm.Data) + len(cm.BinaryData)), age(cm.CreationTimestamp, now)}, nil
		},
	},
	{Kind: "Secret"}: {
		headers: []string{"NAME", "TYPE", "DATA", "AGE"},
		newObj:  func() any { return &corev1.Secret{} },
		row: func(o any, now time.Time) ([]string, []string) {
			s := o.(*corev1.Secret)
			return []string{s.Name, string(s.Type), strconv.Itoa(len(s.Data)), age(s.CreationTimestamp, now)}, nil
		},
	},
	{Kind: "Event"}: {
		headers: []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"},
		newObj:  func() any { return &corev1.Event{} },
		row:     eventRow,
	},
	{Kind: "ServiceAccount"}: {
		headers: []string{"NAME", "SECRETS", "AGE"},
		newObj:  func() any { return &corev1.ServiceAccount{} },
		row: func(o any, now time.Time) ([]string, []string) {
			sa := o.(*corev1.ServiceAccount)
			return []string{sa.Name, strconv.Itoa(len(sa.Secrets)), age(sa.CreationTimestamp, now)}, nil
		},
	},
	{Group: "coordination.k8s.io", Kind: "Lease"}: {
		headers: []string{"NAME", "HOLDER", "AGE"},
		newObj:  func() any { return &coordinationv1.Lease{} },
		row: func(o any, now time.Time) ([]string, []string) {
			l := o.(*coordinationv1.Lease)
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			return []string{l.Name, holder, age(l.CreationTimestamp, now)}, nil
		},
	},
}

var genericTable = table{
	headers: []string{"NAME", "AGE"},
	row: func(o any, now time.Time) ([]string, []string) {
		u := o.(*unstructured.Unstructured)
		return []string{u.GetName(), age(u.GetCreationTimestamp(), now)}, nil
	},
}

// TablePrinter prints kubectl-style tables of one kind; it prints the header once, so watch
// mode can keep adding rows.
type TablePrinter struct {
	Wide          bool
	WithNamespace bool
	NoHeaders     bool
	Now           func() time.Time

	printedHeader bool
}

// Print writes objs (all of one kind) as rows.
func (p *TablePrinter) Print(w io.Writer, gk schema.GroupKind, objs []*unstructured.Unstructured) error {
	t, ok := tables[gk]
	if !ok {
		t = genericTable
	}
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
	if !p.printedHeader && !p.NoHeaders {
		h := t.headers
		if p.Wide {
			h = append(append([]string{}, h...), t.wide...)
		}
		if p.WithNamespace {
			h = append([]string{"NAMESPACE"}, h...)
		}
		fmt.Fprintln(tw, strings.Join(h, "\t"))
		p.printedHeader = true
	}
	for _, u := range objs {
		row := t.row
		var typed any = u
		if t.newObj != nil {
			typed = t.newObj()
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
				// An object the typed struct cannot hold still gets a row: name and age.
				typed, row = u, genericTable.row
			}
		}
		cells, wide := row(typed, now)
		if len(cells) < len(t.headers) {
			cells = append(cells, make([]string, len(t.headers)-len(cells))...)
		}
		if p.Wide {
			cells = append(cells, wide...)
		}
		if p.WithNamespace {
			cells = append([]string{u.GetNamespace()}, cells...)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func podRow(o any, now time.Time) ([]string, []string) {
	pod := o.(*corev1.Pod)
	ready, restarts := 0, 0
	var lastRestart time.Time
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
		restarts += int(cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
			lastRestart = t.FinishedAt.Time
		}
	}
	r := strconv.Itoa(restarts)
	if restarts > 0 && !lastRestart.IsZero() {
		r = fmt.Sprintf("%d (%s ago)", restarts, duration.HumanDuration(now.Sub(lastRestart)))
	}
	node := orNone(pod.Spec.NodeName)
	ip := orNone(pod.Status.PodIP)
	return []string{pod.Name, fmt.Sprintf("%d/%d", ready, len(pod.Spec.Containers)), podStatus(pod), r, age(pod.CreationTimestamp, now)},
		[]string{ip, node}
}

// podStatus follows kubectl: the phase, refined by the pod's reason and its containers' states.
func podStatus(pod *corev1.Pod) string {
	reason := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	if reason == "" {
		reason = "Pending"
	}
	initializing := false
	for i, c := range pod.Status.InitContainerStatuses {
		switch {
		case c.State.Terminated != nil && c.State.Terminated.ExitCode == 0:
			continue
		case c.State.Terminated != nil:
			if c.State.Terminated.Reason != "" {
				reason = "Init:" + c.State.Terminated.Reason
			} else {
				reason = fmt.Sprintf("Init:ExitCode:%d", c.State.Terminated.ExitCode)
			}
		case c.State.Waiting != nil && c.State.Waiting.Reason != "" && c.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + c.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing {
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			c := pod.Status.ContainerStatuses[i]
			switch {
			case c.State.Waiting != nil && c.State.Waiting.Reason != "":
				reason = c.State.Waiting.Reason
			case c.State.Terminated != nil && c.State.Terminated.Reason != "":
				reason = c.State.Terminated.Reason
			case c.State.Terminated != nil && c.State.Terminated.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", c.State.Terminated.Signal)
			case c.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode)
			case c.Ready && c.State.Running != nil:
				hasRunning = true
			}
		}
		if reason == "Completed" && hasRunning {
			reason = "Running"
		}
	}
	if pod.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	return reason
}

func serviceRow(o any, now time.Time) ([]string, []string) {
	svc := o.(*corev1.Service)
	typ := string(svc.Spec.Type)
	if typ == "" {
		typ = string(corev1.ServiceTypeClusterIP)
	}
	clusterIP := svc.Spec.ClusterIP
	if clusterIP == "" || typ == string(corev1.ServiceTypeExternalName) {
		clusterIP = "<none>"
	}
	return []string{svc.Name, typ, clusterIP, externalIP(svc), servicePorts(svc), age(svc.CreationTimestamp, now)},
		[]string{selectorString(svc.Spec.Selector)}
}

func externalIP(svc *corev1.Service) string {
	switch svc.Spec.Type {
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				ips = append(ips, in.IP)
			} else if in.Hostname != "" {
				ips = append(ips, in.Hostname)
			}
		}
		ips = append(ips, svc.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	}
	if len(svc.Spec.ExternalIPs) > 0 {
		return strings.Join(svc.Spec.ExternalIPs, ",")
	}
	return "<none>"
}

func servicePorts(svc *corev1.Service) string {
	if len(svc.Spec.Ports) == 0 {
		return "<none>"
	}
	var out []string
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if p.NodePort != 0 {
			out = append(out, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, proto))
		} else {
			out = append(out, fmt.Sprintf("%d/%s", p.Port, proto))
		}
	}
	return strings.Join(out, ",")
}

func selectorString(sel map[string]string) string {
	if len(sel) == 0 {
		return "<none>"
	}
	return labels.SelectorFromSet(sel).String()
}

func labelSelectorString(sel *metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return "<none>"
	}
	return s.String()
}

func containersImages(spec corev1.PodSpec) []string {
	var names, images []string
	for _, c := range spec.Containers {
		names = append(names, c.Name)
		images = append(images, c.Image)
	}
	return []string{strings.Join(names, ","), strings.Join(images, ",")}
}

func deploymentRow(o any, now time.Time) ([]string, []string) {
	d := o.(*appsv1.Deployment)
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	return []string{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, desired),
			strconv.Itoa(int(d.Status.UpdatedReplicas)), strconv.Itoa(int(d.Status.AvailableReplicas)), age(d.CreationTimestamp, now)},
		append(containersImages(d.Spec.Template.Spec), labelSelectorString(d.Spec.Selector))
}

func replicaSetRow(o any, now time.Time) ([]string, []string) {
	rs := o.(*appsv1.ReplicaSet)
	desired := int32(1)
	if rs.Spec.Replicas != nil {
		desired = *rs.Spec.Replicas
	}
	return []string{rs.Name, strconv.Itoa(int(desired)), strconv.Itoa(int(rs.Status.Replicas)), strconv.Itoa(int(rs.Status.ReadyReplicas)), age(rs.CreationTimestamp, now)},
		append(containersImages(rs.Spec.Template.Spec), labelSelectorString(rs.Spec.Selector))
}

func rcRow(o any, now time.Time) ([]string, []string) {
	rc := o.(*corev1.ReplicationController)
	desired := int32(1)
	if rc.Spec.Replicas != nil {
		desired = *rc.Spec.Replicas
	}
	var ci []string
	if rc.Spec.Template != nil {
		ci = containersImages(rc.Spec.Template.Spec)
	} else {
		ci = []string{"", ""}
	}
	return []string{rc.Name, strconv.Itoa(int(desired)), strconv.Itoa(int(rc.Status.Replicas)), strconv.Itoa(int(rc.Status.ReadyReplicas)), age(rc.CreationTimestamp, now)},
		append(ci, selectorString(rc.Spec.Selector))
}

func nodeRow(o any, now time.Time) ([]string, []string) {
	n := o.(*corev1.Node)
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			} else {
				status = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	var roles []string
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, "node-role.kubernetes.io/"):
			if r := strings.TrimPrefix(k, "node-role.kubernetes.io/"); r != "" {
				roles = append(roles, r)
			}
		case k == "kubernetes.io/role" && v != "":
			roles = append(roles, v)
		}
	}
	sort.Strings(roles)
	internal, external := "<none>", "<none>"
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && internal == "<none>" {
			internal = a.Address
		}
		if a.Type == corev1.NodeExternalIP && external == "<none>" {
			external = a.Address
		}
	}
	ni := n.Status.NodeInfo
	return []string{n.Name, status, orNone(strings.Join(roles, ",")), age(n.CreationTimestamp, now), ni.KubeletVersion},
		[]string{internal, external, orNone(ni.OSImage), orNone(ni.KernelVersion), orNone(ni.ContainerRuntimeVersion)}
}

// listMore shortens a list the way kubectl does: the first three, then "+ N more...".
func listMore(items []string) string {
	if len(items) == 0 {
		return "<none>"
	}
	if len(items) > 3 {
		return strings.Join(items[:3], ",") + fmt.Sprintf(" + %d more...", len(items)-3)
	}
	return strings.Join(items, ",")
}

func endpointSliceRow(o any, now time.Time) ([]string, []string) {
	s := o.(*discoveryv1.EndpointSlice)
	var ports []string
	for _, p := range s.Ports {
		if p.Port != nil {
			ports = append(ports, strconv.Itoa(int(*p.Port)))
		}
	}
	portStr := "<unset>"
	if len(ports) > 0 {
		portStr = listMore(ports)
	}
	var addrs []string
	for _, e := range s.Endpoints {
		addrs = append(addrs, e.Addresses...)
	}
	epStr := "<unset>"
	if len(addrs) > 0 {
		epStr = listMore(addrs)
	}
	return []string{s.Name, string(s.AddressType), portStr, epStr, age(s.CreationTimestamp, now)}, nil
}

func endpointsRow(o any, now time.Time) ([]string, []string) {
	ep := o.(*corev1.Endpoints)
	var list []string
	for _, ss := range ep.Subsets {
		for _, a := range ss.Addresses {
			if len(ss.Ports) == 0 {
				list = append(list, a.IP)
			}
			for _, p := range ss.Ports {
				list = append(list, fmt.Sprintf("%s:%d", a.IP, p.Port))
			}
		}
	}
	return []string{ep.Name, listMore(list), age(ep.CreationTimestamp, now)}, nil
}

func eventRow(o any, now time.Time) ([]string, []string) {
	e := o.(*corev1.Event)
	last := e.LastTimestamp
	if last.IsZero() {
		last = metav1.Time{Time: e.EventTime.Time}
	}
	if last.IsZero() {
		last = e.CreationTimestamp
	}
	obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
	return []string{age(last, now), e.Type, e.Reason, obj, strings.TrimSpace(e.Message)}, nil
}
