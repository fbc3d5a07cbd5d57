package scheduler

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// portKey is one host port in use on a node; ip "" means all addresses.
type portKey struct {
	proto corev1.Protocol
	port  int32
}

// podState is a pod the cache counts against a node: bound (seen with
// spec.nodeName through the informer) or assumed (bind in flight).
type podState struct {
	pod      *corev1.Pod
	node     string
	req, nz  resources
	ownerUID types.UID
	assumed  bool
}

// nodeInfo aggregates what is already placed on a node so a filter or a
// score is O(1) per node instead of a walk over the node's pods.
type nodeInfo struct {
	name        string
	node        *corev1.Node // nil while only pods reference the name
	allocatable resources
	allocPods   int64
	ready       bool

	requested resources
	nonZero   resources
	pods      map[types.UID]*podState
	ports     map[portKey][]string // host IPs using the port
	owners    map[types.UID]int
}

func newNodeInfo(name string) *nodeInfo {
	return &nodeInfo{name: name, pods: map[types.UID]*podState{}, ports: map[portKey][]string{}, owners: map[types.UID]int{}}
}

func (n *nodeInfo) setNode(node *corev1.Node) {
	n.node = node
	n.allocatable = fromList(node.Status.Allocatable)
	n.allocPods = 110
	if q, ok := node.Status.Allocatable[corev1.ResourcePods]; ok {
		n.allocPods = q.Value()
	}
	n.ready = false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			n.ready = c.Status == corev1.ConditionTrue
		}
	}
}

func (n *nodeInfo) addPod(ps *podState) {
	n.pods[ps.pod.UID] = ps
	n.requested.add(ps.req)
	n.nonZero.add(ps.nz)
	if ps.ownerUID != "" {
		n.owners[ps.ownerUID]++
	}
	for _, hp := range hostPorts(ps.pod) {
		n.ports[hp.key] = append(n.ports[hp.key], hp.ip)
	}
}

func (n *nodeInfo) removePod(ps *podState) {
	if _, ok := n.pods[ps.pod.UID]; !ok {
		return
	}
	delete(n.pods, ps.pod.UID)
	n.requested.sub(ps.req)
	n.nonZero.sub(ps.nz)
	if ps.ownerUID != "" {
		if n.owners[ps.ownerUID]--; n.owners[ps.ownerUID] <= 0 {
			delete(n.owners, ps.ownerUID)
		}
	}
	for _, hp := range hostPorts(ps.pod) {
		ips := n.ports[hp.key]
		for i, ip := range ips {
			if ip == hp.ip {
				ips = append(ips[:i], ips[i+1:]...)
				break
			}
		}
		if len(ips) == 0 {
			delete(n.ports, hp.key)
		} else {
			n.ports[hp.key] = ips
		}
	}
}

type hostPort struct {
	key portKey
	ip  string
}

func hostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	for i := range pod.Spec.Containers {
		for _, p := range pod.Spec.Containers[i].Ports {
			if p.HostPort <= 0 {
				continue
			}
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ip := p.HostIP
			if ip == "0.0.0.0" || ip == "::" {
				ip = ""
			}
			out = append(out, hostPort{portKey{proto, p.HostPort}, ip})
		}
	}
	return out
}

// cache is the scheduler's view of nodes and placed pods, fed by informers.
type cache struct {
	mu    sync.RWMutex
	nodes map[string]*nodeInfo
	list  []*nodeInfo // nodes with a Node object, in stable order
	pods  map[types.UID]*podState
}

func newCache() *cache {
	return &cache{nodes: map[string]*nodeInfo{}, pods: map[types.UID]*podState{}}
}

func (c *cache) rebuildList() {
	c.list = c.list[:0]
	for _, n := range c.nodes {
		if n.node != nil {
			c.list = append(c.list, n)
		}
	}
}

func (c *cache) setNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[node.Name]
	if !ok {
		n = newNodeInfo(node.Name)
		c.nodes[node.Name] = n
	}
	had := n.node != nil
	n.setNode(node)
	if !had {
		c.rebuildList()
	}
}

func (c *cache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[name]
	if !ok {
		return
	}
	n.node = nil
	if len(n.pods) == 0 {
		delete(c.nodes, name)
	}
	c.rebuildList()
}

func controllerUID(pod *corev1.Pod) types.UID {
	if ref := metav1.GetControllerOf(pod); ref != nil {
		return ref.UID
	}
	return ""
}

// place counts pod against nodeName, replacing an earlier placement.
func (c *cache) place(pod *corev1.Pod, nodeName string, assumed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.placeLocked(pod, nodeName, assumed)
}

func (c *cache) placeLocked(pod *corev1.Pod, nodeName string, assumed bool) {
	if old, ok := c.pods[pod.UID]; ok {
		if old.node == nodeName && !assumed {
			// Confirmation of an assumed pod, or a plain update: refresh the object.
			c.nodes[nodeName].removePod(old)
		} else {
			c.removeLocked(old)
		}
	}
	req, nz := podRequests(pod)
	ps := &podState{pod: pod, node: nodeName, req: req, nz: nz, ownerUID: controllerUID(pod), assumed: assumed}
	n, ok := c.nodes[nodeName]
	if !ok {
		n = newNodeInfo(nodeName)
		c.nodes[nodeName] = n
	}
	n.addPod(ps)
	c.pods[pod.UID] = ps
}

func (c *cache) removeLocked(ps *podState) {
	delete(c.pods, ps.pod.UID)
	if n, ok := c.nodes[ps.node]; ok {
		n.removePod(ps)
		if n.node == nil && len(n.pods) == 0 {
			delete(c.nodes, ps.node)
		}
	}
}

func (c *cache) removePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[uid]; ok {
		c.removeLocked(ps)
	}
}

// forget drops an assumed pod whose binding failed.
func (c *cache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[uid]; ok && ps.assumed {
		c.removeLocked(ps)
	}
}

func (c *cache) isPlaced(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.pods[uid]
	return ok
}
