package bench

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// iptablesMode is kube-proxy's iptables proxier. A full sync restores the whole table; a
// one-service update is timed both ways kube-proxy has done it: restoring the whole table
// (every release before 1.26, and every full resync since) and the partial restore of
// MinimizeIPTablesRestore (the default since 1.27).
type iptablesMode struct {
	name    string // ModeIptables or ModeIptablesLegacy
	env     *Env
	backend string // nft or legacy
	restore string
	save    string
	chains  []string // per-service chains currently loaded
}

func (m *iptablesMode) Name() string     { return m.name }
func (m *iptablesMode) Translates() bool { return true }

func (m *iptablesMode) Setup(env *Env, n, b int) error {
	m.env = env
	m.backend = env.IptablesBackend
	if m.name == ModeIptablesLegacy {
		m.backend = "legacy"
	}
	switch m.backend {
	case "", "nft":
		m.backend, m.restore, m.save = "nft", "iptables-nft-restore", "iptables-nft-save"
	case "legacy":
		m.restore, m.save = "iptables-legacy-restore", "iptables-legacy-save"
	default:
		return fmt.Errorf("--iptables-backend %q: want nft or legacy", env.IptablesBackend)
	}
	_, err := runIn(env, IptablesJumps(), m.restore, "-w", "5", "--noflush")
	return err
}

// restoreArgs are kube-proxy's: wait 5 s for the xtables lock, polling every 100 ms, keep
// whatever other components have in the tables, keep the counters.
var restoreArgs = []string{"-w", "5", "-W", "100000", "--noflush", "--counters"}

// staleChains are loaded chains that the rules for svcs/slices no longer have, and those rules'
// chains.
func (m *iptablesMode) staleChains(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) (stale, now []string) {
	now = IptablesChains(svcs, slices)
	keep := map[string]bool{}
	for _, c := range now {
		keep[c] = true
	}
	for _, c := range m.chains {
		if !keep[c] {
			stale = append(stale, c)
		}
	}
	return stale, now
}

func (m *iptablesMode) apply(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) error {
	stale, now := m.staleChains(svcs, slices)
	if _, err := runIn(m.env, IptablesRestore(svcs, slices, ClusterCIDR, stale), m.restore, restoreArgs...); err != nil {
		return err
	}
	m.chains = now
	return nil
}

// Clear empties the node netns' tables and puts the jumps back. It is not timed, and deleting
// 100,000 chains through iptables-restore would take longer than the sync it prepares for.
func (m *iptablesMode) Clear() error {
	if err := m.flush(); err != nil {
		return err
	}
	_, err := runIn(m.env, IptablesJumps(), m.restore, "-w", "5", "--noflush")
	return err
}

func (m *iptablesMode) flush() error {
	var err error
	if m.backend == "legacy" {
		_, err = runIn(m.env, []byte("*filter\nCOMMIT\n*nat\nCOMMIT\n"), m.restore, "-w", "5")
	} else {
		// iptables-nft keeps its tables in nftables, and nothing else in the node netns uses
		// nftables while this mode runs: flushing the ruleset deletes them, unhooking them (and
		// conntrack) from the netns.
		_, err = runIn(m.env, nil, "nft", "flush", "ruleset")
	}
	m.chains = nil
	return err
}

func (m *iptablesMode) FullSync(set *ServiceSet) error { return m.apply(set.Services, set.Slices) }

// LoadUntimed loads the same rules as FullSync by a faster path, for measuring the packet path
// when kube-proxy's own load did not finish in time. iptables-nft-restore's cost comes from
// --noflush (README): without it, the table flush at the start of each table lets it skip
// collecting the chain names, and it loads kube-proxy's 10,000-service table in seconds. The
// flush also drops the jumps from the built-in chains, so they are put back after, exactly as
// Setup installs them; the resulting ruleset is the one a finished FullSync leaves.
func (m *iptablesMode) LoadUntimed(set *ServiceSet) (string, error) {
	_, now := m.staleChains(set.Services, set.Slices)
	if _, err := runIn(m.env, IptablesRestore(set.Services, set.Slices, ClusterCIDR, nil), m.restore, "-w", "5", "--counters"); err != nil {
		return "", err
	}
	// Without their chain declarations, which under --noflush would flush KUBE-SERVICES again.
	var jumps []string
	for _, line := range strings.Split(string(IptablesJumps()), "\n") {
		if !strings.HasPrefix(line, ":") {
			jumps = append(jumps, line)
		}
	}
	if _, err := runIn(m.env, []byte(strings.Join(jumps, "\n")), m.restore, "-w", "5", "--noflush"); err != nil {
		return "", err
	}
	m.chains = now
	return "the same rules loaded untimed by " + m.restore + " without --noflush, then the jumps with it", nil
}

// Update restores the whole table with service i changed.
func (m *iptablesMode) Update(set *ServiceSet, i int, _ *svcState) error {
	return m.apply(set.Services, set.Slices)
}

// PartialUpdate is kube-proxy's partial sync after service i changed.
func (m *iptablesMode) PartialUpdate(set *ServiceSet, i int, _ *svcState) error {
	stale, now := m.staleChains(set.Services, set.Slices)
	svc := set.Services[i]
	in := IptablesPartialRestore(set.Services, set.Slices, []string{svc.Namespace + "/" + svc.Name}, ClusterCIDR, stale)
	if _, err := runIn(m.env, in, m.restore, restoreArgs...); err != nil {
		return err
	}
	if largeCluster(svcPorts(set.Services, set.Slices)) {
		// The stale chains stay loaded, as in kube-proxy; the next full restore deletes them.
		now = append(now, stale...)
	}
	m.chains = now
	return nil
}

func (m *iptablesMode) Memory() (int64, string, error) {
	out, err := runIn(m.env, nil, m.save, "-t", "nat")
	return int64(len(out)), m.save + " -t nat bytes", err
}

// Teardown removes the tables; the node netns is deleted after each mode anyway.
func (m *iptablesMode) Teardown() error {
	if m.env == nil {
		return nil
	}
	return m.flush()
}
