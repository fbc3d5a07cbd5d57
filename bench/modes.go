package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Mode names.
const (
	ModeDirect   = "direct"
	ModeEBPFTC   = "ebpf-tc"
	ModeEBPFSock = "ebpf-sock"
	ModeIptables = "iptables"
	ModeNftables = "nftables"
)

// AllModes in report order.
var AllModes = []string{ModeDirect, ModeEBPFTC, ModeEBPFSock, ModeIptables, ModeNftables}

// Env is what a mode may touch: the topology's node netns and the client cgroup.
type Env struct {
	Topo            *Topology
	Cgroup          string // the load generators' cgroup (ebpf-sock attaches here)
	PinPrefix       string // bpffs pin dirs are PinPrefix + random
	IptablesBackend string // "nft" or "legacy"
	Ctx             context.Context
}

// Mode is one way of translating service traffic. Programming calls are timed by the caller.
type Mode interface {
	Name() string
	// Setup prepares the mode for sets of up to n services x b backends.
	Setup(env *Env, n, b int) error
	// Clear removes every service, so the next FullSync programs from nothing.
	Clear() error
	FullSync(set *ServiceSet) error
	// Update applies service i's new state (set already holds it; before is the old one).
	Update(set *ServiceSet, i int, before *svcState) error
	// Memory is the size of the rules or maps (bytes) and how it was measured.
	Memory() (int64, string, error)
	Teardown() error
	// Translates reports whether the client dials the service VIP (false: pod IPs).
	Translates() bool
}

// svcState is one service as it was before an update.
type svcState struct {
	svc   *corev1.Service
	slice *discoveryv1.EndpointSlice
}

// NewMode returns the named mode.
func NewMode(name string) (Mode, error) {
	switch name {
	case ModeDirect:
		return &directMode{}, nil
	case ModeIptables:
		return &iptablesMode{}, nil
	case ModeNftables:
		return &nftMode{}, nil
	case ModeEBPFTC, ModeEBPFSock:
		return newEBPFMode(name)
	}
	return nil, fmt.Errorf("mode %q: want one of %s", name, strings.Join(AllModes, ", "))
}

// Targets are the addresses the client dials for the measured service at pos.
func Targets(m Mode, set *ServiceSet, pos Position) (tcp, udp []string) {
	tp, up := set.Ports(pos)
	if !m.Translates() {
		for i := 0; i < set.B; i++ {
			tcp = append(tcp, net.JoinHostPort(PodIP(i).String(), strconv.Itoa(tp)))
			udp = append(udp, net.JoinHostPort(PodIP(i).String(), strconv.Itoa(up)))
		}
		return tcp, udp
	}
	vip := ServiceIP(set.Measured(pos)).String()
	return []string{net.JoinHostPort(vip, strconv.Itoa(servicePortTCP))},
		[]string{net.JoinHostPort(vip, strconv.Itoa(servicePortUDP))}
}

// directMode is the floor: the client dials a backend's pod IP and nothing translates.
type directMode struct{}

func (directMode) Name() string                             { return ModeDirect }
func (directMode) Setup(*Env, int, int) error               { return nil }
func (directMode) Clear() error                             { return nil }
func (directMode) FullSync(*ServiceSet) error               { return nil }
func (directMode) Update(*ServiceSet, int, *svcState) error { return nil }
func (directMode) Memory() (int64, string, error)           { return 0, "none", nil }
func (directMode) Teardown() error                          { return nil }
func (directMode) Translates() bool                         { return false }

// CommandTimeout bounds one iptables-restore or nft run: at 10,000 services on a busy machine
// one takes minutes, and a stuck one must not hold the whole benchmark.
var CommandTimeout = 20 * time.Minute

// runIn runs a command inside the node netns with stdin, returning a readable error.
func runIn(env *Env, stdin []byte, name string, args ...string) ([]byte, error) {
	var out []byte
	ctx, cancel := context.WithTimeout(env.Ctx, CommandTimeout)
	defer cancel()
	err := env.Topo.Node.Do(func() error {
		cmd := exec.CommandContext(ctx, name, args...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var err error
		out, err = cmd.Output()
		if err != nil {
			msg := strings.TrimSpace(stderr.String())
			if len(msg) > 600 {
				msg = msg[:600] + "..."
			}
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%s %s in %s: did not finish within %v", name, strings.Join(args, " "), env.Topo.Node.Name, CommandTimeout)
			}
			return fmt.Errorf("%s %s in %s: %v: %s", name, strings.Join(args, " "), env.Topo.Node.Name, err, msg)
		}
		return nil
	})
	return out, err
}
