package bench

// nftMode is kube-proxy's nftables proxier: a full transaction on the first sync, and on a
// change only the changed service's chains plus the refilled dispatch map.
type nftMode struct {
	env    *Env
	loaded bool
}

func (m *nftMode) Name() string                   { return ModeNftables }
func (m *nftMode) Translates() bool               { return true }
func (m *nftMode) Setup(env *Env, n, b int) error { m.env = env; return nil }
func (m *nftMode) Teardown() error                { return nil }

func (m *nftMode) nft(in []byte) error {
	_, err := runIn(m.env, in, "nft", "-f", "-")
	return err
}

func (m *nftMode) Clear() error {
	if !m.loaded {
		return nil
	}
	m.loaded = false
	return m.nft(NftDelete())
}

func (m *nftMode) FullSync(set *ServiceSet) error {
	if err := m.nft(NftFull(set.Services, set.Slices, ClusterCIDR)); err != nil {
		return err
	}
	m.loaded = true
	return nil
}

func (m *nftMode) Update(set *ServiceSet, i int, before *svcState) error {
	return m.nft(NftUpdate(set.Services, set.Slices, set.Services[i],
		before.svc, before.slice, set.Slices[i], ClusterCIDR))
}

func (m *nftMode) Memory() (int64, string, error) {
	out, err := runIn(m.env, nil, "nft", "list", "table", "ip", nftTable)
	return int64(len(out)), "nft list table bytes", err
}
