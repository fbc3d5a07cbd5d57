package scheduler

import (
	corev1 "k8s.io/api/core/v1"
)

// Defaults used only for scoring pods that request nothing, so that many
// request-less pods still spread instead of piling onto one node (as upstream).
const (
	defaultMilliCPURequest = 100
	defaultMemoryRequest   = 200 * 1024 * 1024
)

// resources is what a pod asks for, or what a node offers, in plain integers.
type resources struct {
	milliCPU int64
	memory   int64
}

func (r *resources) add(o resources) {
	r.milliCPU += o.milliCPU
	r.memory += o.memory
}

func (r *resources) sub(o resources) {
	r.milliCPU -= o.milliCPU
	r.memory -= o.memory
}

func fromList(l corev1.ResourceList) resources {
	var r resources
	if q, ok := l[corev1.ResourceCPU]; ok {
		r.milliCPU = q.MilliValue()
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		r.memory = q.Value()
	}
	return r
}

func maxRes(a, b resources) resources {
	if b.milliCPU > a.milliCPU {
		a.milliCPU = b.milliCPU
	}
	if b.memory > a.memory {
		a.memory = b.memory
	}
	return a
}

// podRequests is the effective request of a pod: the sum of its containers
// (and restartable init containers, which run alongside), or the largest
// ordinary init container if bigger, plus the pod overhead.
func podRequests(pod *corev1.Pod) (req, nonZero resources) {
	var sum, sumNZ resources
	for i := range pod.Spec.Containers {
		c := fromList(pod.Spec.Containers[i].Resources.Requests)
		sum.add(c)
		sumNZ.add(nonZeroOf(c))
	}
	var initMax, initMaxNZ, sidecars, sidecarsNZ resources
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		c := fromList(ic.Resources.Requests)
		if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars.add(c)
			sidecarsNZ.add(nonZeroOf(c))
			continue
		}
		// An ordinary init container runs next to the sidecars started before it.
		withSide := c
		withSide.add(sidecars)
		initMax = maxRes(initMax, withSide)
		withSideNZ := nonZeroOf(c)
		withSideNZ.add(sidecarsNZ)
		initMaxNZ = maxRes(initMaxNZ, withSideNZ)
	}
	sum.add(sidecars)
	sumNZ.add(sidecarsNZ)
	req = maxRes(sum, initMax)
	nonZero = maxRes(sumNZ, initMaxNZ)
	if pod.Spec.Overhead != nil {
		o := fromList(pod.Spec.Overhead)
		req.add(o)
		nonZero.add(o)
	}
	return req, nonZero
}

func nonZeroOf(r resources) resources {
	if r.milliCPU == 0 {
		r.milliCPU = defaultMilliCPURequest
	}
	if r.memory == 0 {
		r.memory = defaultMemoryRequest
	}
	return r
}
