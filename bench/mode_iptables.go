package bench

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// iptablesMode is kube-proxy's iptables proxier: every sync, full or after one change, is one
// iptables-restore of the whole nat table (kube-proxy's behaviour for all but its
// unchanged-service optimisation, which still restores every KUBE-SERVICES rule).
type iptablesMode struct {
	env     *Env
	restore string
	save    string
	chains  []string // per-service chains currently loaded
}

func (m *iptablesMode) Name() string     { return ModeIptables }
func (m *iptablesMode) Translates() bool { return true }

func (m *iptablesMode) Setup(env *Env, n, b int) error {
	m.env = env
	switch env.IptablesBackend {
	case "", "nft":
		m.restore, m.save = "iptables-nft-restore", "iptables-nft-save"
	case "legacy":
		m.restore, m.save = "iptables-legacy-restore", "iptables-legacy-save"
	default:
		return fmt.Errorf("--iptables-backend %q: want nft or legacy", env.IptablesBackend)
	}
	_, err := runIn(env, IptablesJumps(), m.restore, "-w", "5", "--noflush")
	return err
}

func (m *iptablesMode) apply(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) error {
	now := IptablesChains(svcs, slices)
	keep := map[string]bool{}
	for _, c := range now {
		keep[c] = true
	}
	var stale []string
	for _, c := range m.chains {
		if !keep[c] {
			stale = append(stale, c)
		}
	}
	in := IptablesRestore(svcs, slices, ClusterCIDR, stale)
	if _, err := runIn(m.env, in, m.restore, "-w", "5", "-W", "100000", "--noflush", "--counters"); err != nil {
		return err
	}
	m.chains = now
	return nil
}

// Clear empties the node netns' tables and puts the jumps back. It is not timed, and deleting
// 100,000 chains through iptables-restore would take longer than the sync it prepares for.
func (m *iptablesMode) Clear() error {
	var err error
	if m.env.IptablesBackend == "legacy" {
		_, err = runIn(m.env, []byte("*filter\nCOMMIT\n*nat\nCOMMIT\n"), m.restore, "-w", "5")
	} else {
		// iptables-nft keeps its tables in nftables: flushing the netns' ruleset is the same reset.
		_, err = runIn(m.env, nil, "nft", "flush", "ruleset")
	}
	if err != nil {
		return err
	}
	m.chains = nil
	_, err = runIn(m.env, IptablesJumps(), m.restore, "-w", "5", "--noflush")
	return err
}
func (m *iptablesMode) FullSync(set *ServiceSet) error { return m.apply(set.Services, set.Slices) }
func (m *iptablesMode) Update(set *ServiceSet, _ int, _ *svcState) error {
	return m.apply(set.Services, set.Slices)
}

func (m *iptablesMode) Memory() (int64, string, error) {
	out, err := runIn(m.env, nil, m.save, "-t", "nat")
	return int64(len(out)), m.save + " -t nat bytes", err
}

func (m *iptablesMode) Teardown() error { return nil } // the node netns takes the rules with it
