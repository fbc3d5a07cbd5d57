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
	// ModeIptablesLegacy is the iptables mode through iptables-legacy-restore, whatever
	// --iptables-backend says: iptables-nft-restore 1.8.x cannot load kube-proxy's table for
	// 10,000 services in reasonable time (see README), so the default run measures both.
	ModeIptablesLegacy = "iptables-legacy"
	ModeNftables       = "nftables"
)

// AllModes in report order.
var AllModes = []string{ModeDirect, ModeEBPFTC, ModeEBPFSock, ModeIptables, ModeIptablesLegacy, ModeNftables}

// ruleMode reports whether a mode programs netfilter rules (and is capped by MaxRuleServices).
func ruleMode(name string) bool {
	return name == ModeIptables || name == ModeIptablesLegacy || name == ModeNftables
}

// iptablesFamily reports whether a mode is kube-proxy's iptables layout (either backend).
func iptablesFamily(name string) bool { return name == ModeIptables || name == ModeIptablesLegacy }

// Env is what a mode may touch: the topology's node netns and the client cgroup.
type Env struct {
	Topo            *Topology
	Cgroup          string // the load generators' cgroup (ebpf-sock attaches here)
	PinPrefix       string // bpffs pin dirs are PinPrefix + random
	IptablesBackend string // "nft" or "legacy", for ModeIptables
	// CmdTimeout bounds one iptables-restore or nft run (see DNFError).
	CmdTimeout time.Duration
	Ctx        context.Context
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
	case ModeIptables, ModeIptablesLegacy:
		return &iptablesMode{name: name}, nil
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

// DefaultCmdTimeout bounds one iptables-restore or nft run unless Config.RuleTimeout says
// otherwise: iptables-nft-restore's time grows faster than the square of N (README), and a run
// that cannot finish must be reported as such, not hold the whole benchmark.
const DefaultCmdTimeout = 5 * time.Minute

// DNFError is a rule-loading command that was killed at its deadline.
type DNFError struct {
	Cmd     string
	Timeout time.Duration
}

func (e *DNFError) Error() string {
	return fmt.Sprintf("%s did not finish in %v (killed)", e.Cmd, e.Timeout)
}

// runIn runs a command inside the node netns with stdin, returning a readable error.
func runIn(env *Env, stdin []byte, name string, args ...string) ([]byte, error) {
	var out []byte
	timeout := env.CmdTimeout
	if timeout <= 0 {
		timeout = DefaultCmdTimeout
	}
	ctx, cancel := context.WithTimeout(env.Ctx, timeout)
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
			if ctx.Err() == context.DeadlineExceeded {
				return &DNFError{Cmd: name, Timeout: timeout}
			}
			msg := strings.TrimSpace(stderr.String())
			if len(msg) > 600 {
				msg = msg[:600] + "..."
			}
			return fmt.Errorf("%s %s in %s: %v: %s", name, strings.Join(args, " "), env.Topo.Node.Name, err, msg)
		}
		return nil
	})
	return out, err
}
