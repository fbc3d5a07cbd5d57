package kubelet

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Steps of a pod's startup, reported to Config.trace (benchmarks use them for a breakdown of
// created -> Ready).
const (
	stepSeen     = "seen"     // the agent's informer delivered the pod
	stepNetwork  = "network"  // netns, veth, address and routes are up
	stepPrepared = "prepared" // volumes and /etc files are written
	stepCreated  = "created"  // the first container exists in containerd
	stepStarted  = "started"  // the last container's task runs
	stepReady    = "ready"    // a status with Ready=True is in the API
)

// trace reports a startup step of a pod, when someone listens.
func (a *Agent) trace(uid types.UID, step string) {
	if a.cfg.trace != nil {
		a.cfg.trace(uid, step, time.Now())
	}
}
