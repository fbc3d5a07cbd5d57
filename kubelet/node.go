package kubelet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Version is what the agent reports as its kubelet version.
const Version = "v1.37.2-skiff"

const leaseNamespace = "kube-node-lease"

// registerNode creates the Node or, after a restart, takes it over; then posts its status.
func (a *Agent) registerNode(ctx context.Context) error {
	nodes := a.client.CoreV1().Nodes()
	for {
		_, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
				Name: a.cfg.NodeName,
				Labels: map[string]string{
					"kubernetes.io/hostname": a.cfg.NodeName,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     goruntime.GOARCH,
				},
			}, Spec: corev1.NodeSpec{PodCIDR: a.cfg.PodCIDR}}
			if a.cfg.PodCIDR != "" {
				n.Spec.PodCIDRs = []string{a.cfg.PodCIDR}
			}
			_, err = nodes.Create(ctx, n, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
		}
		if err == nil {
			break
		}
		a.log.Warn("register node, retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return a.updateNodeStatus(ctx)
}

// onNode follows the Node for its pod CIDR.
func (a *Agent) onNode(o any) {
	n, ok := o.(*corev1.Node)
	if !ok || n.Name != a.cfg.NodeName {
		return
	}
	cidr := n.Spec.PodCIDR
	if cidr == "" && a.cfg.PodCIDR != "" {
		// No node IPAM controller has assigned one: claim the configured CIDR.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cur, err := a.client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil || cur.Spec.PodCIDR != "" {
				return
			}
			cur.Spec.PodCIDR = a.cfg.PodCIDR
			cur.Spec.PodCIDRs = []string{a.cfg.PodCIDR}
			if _, err := a.client.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				a.log.Warn("set Node spec.podCIDR", "err", err)
			}
		}()
		cidr = a.cfg.PodCIDR
	}
	if cidr == "" || cidr == a.net.PodCIDR() {
		return
	}
	if err := a.net.SetPodCIDR(cidr); err != nil {
		a.log.Error("pod CIDR", "cidr", cidr, "err", err)
		return
	}
	a.log.Info("pod CIDR assigned", "cidr", cidr)
	// The node is Ready from this moment: say so now rather than at the next status tick.
	go func() {
		if err := a.updateNodeStatus(a.ctx); err != nil && a.ctx.Err() == nil {
			a.log.Warn("update node status", "err", err)
		}
	}()
	a.mu.Lock()
	for _, w := range a.workers {
		w.kick()
	}
	a.mu.Unlock()
}

func (a *Agent) nodeLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.updateNodeStatus(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("update node status", "err", err)
		}
	}
}

// nodeStatus is the Node's status as this agent sees it.
func (a *Agent) nodeStatus(ctx context.Context, old corev1.NodeStatus) corev1.NodeStatus {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	mem := memTotal()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(a.cfg.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(diskTotal(a.cfg.DataDir), resource.BinarySI),
	}
	alloc := capacity.DeepCopy()
	// Keep 100Mi for the system, as a kubelet's default eviction threshold does.
	if mem > 200<<20 {
		alloc[corev1.ResourceMemory] = *resource.NewQuantity(mem-100<<20, resource.BinarySI)
	}
	readyStatus, reason, msg := corev1.ConditionTrue, "KubeletReady", "skiff agent is posting ready status"
	if err := a.rt.Healthy(ctx); err != nil {
		readyStatus, reason, msg = corev1.ConditionFalse, "ContainerRuntimeUnhealthy", "containerd is not answering: "+err.Error()
	} else if a.net.PodCIDR() == "" {
		readyStatus, reason, msg = corev1.ConditionFalse, "NetworkNotReady", "waiting for the node's pod CIDR (Node.spec.podCIDR)"
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		for _, o := range old.Conditions {
			if o.Type == t && o.Status == s {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	machineID, _ := os.ReadFile("/etc/machine-id")
	port := int32(10250)
	if p := listenPort(a.listenAddr); p > 0 {
		port = int32(p)
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: alloc,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeReady, readyStatus, reason, msg),
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.nodeIP},
			{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: port}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               strings.TrimSpace(string(machineID)),
			BootID:                  strings.TrimSpace(string(bootID)),
			KernelVersion:           unix.ByteSliceToString(uts.Release[:]),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: a.rt.Version(ctx),
			KubeletVersion:          Version,
			KubeProxyVersion:        Version,
			OperatingSystem:         "linux",
			Architecture:            goruntime.GOARCH,
		},
		Images: old.Images,
	}
}

func (a *Agent) updateNodeStatus(ctx context.Context) error {
	nodes := a.client.CoreV1().Nodes()
	for i := 0; i < 3; i++ {
		n, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node: %w", err)
		}
		n.Status = a.nodeStatus(ctx, n.Status)
		if _, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{}); err == nil {
			return nil
		} else if !apierrors.IsConflict(err) {
			return fmt.Errorf("update node status: %w", err)
		}
	}
	return fmt.Errorf("update node status: conflicts")
}

func (a *Agent) leaseLoop(ctx context.Context) {
	for {
		if err := a.renewLease(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("renew lease", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.cfg.LeaseInterval):
		}
	}
}

// renewLease creates or renews the node's Lease in kube-node-lease.
func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.client.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	dur := int32(40)
	l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: leaseNamespace},
			Spec: coordv1.LeaseSpec{
				HolderIdentity:       ptr.To(a.cfg.NodeName),
				LeaseDurationSeconds: &dur,
				RenewTime:            &now,
			},
		}
		if n, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{}); err == nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
	l.Spec.LeaseDurationSeconds = &dur
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(s.Text(), "MemTotal: %d kB", &kb); n == 1 {
			return kb << 10
		}
	}
	return 0
}

func diskTotal(dir string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Blocks) * int64(st.Bsize)
}

func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}
