package datapath

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
)

// Maps are the pinned maps opened read-only-in-spirit for dumps and verification, without
// loading programs: `skiff datapath services|backends|conntrack|verify` use them.
type Maps struct {
	services, backends, maglev, conntrack, snat, counters, drops *ebpf.Map
}

// OpenPinned opens the maps pinned in pinDir.
func OpenPinned(pinDir string) (*Maps, error) {
	m := &Maps{}
	for name, dst := range map[string]**ebpf.Map{
		"services": &m.services, "backends": &m.backends, "maglev": &m.maglev, "conntrack": &m.conntrack,
		"snat": &m.snat, "counters": &m.counters, "drops": &m.drops,
	} {
		mp, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("open pinned map %s in %s: %w (is the agent running with --pin-dir %s?)", name, pinDir, err, pinDir)
		}
		*dst = mp
	}
	return m, nil
}

// Maps returns the live maps of a Datapath (not to be closed).
func (d *Datapath) Maps() *Maps {
	o := d.objs
	return &Maps{services: o.services, backends: o.backends, maglev: o.maglev, conntrack: o.conntrack,
		snat: o.snat, counters: o.counters, drops: o.drops}
}

func (m *Maps) Close() {
	for _, mp := range []*ebpf.Map{m.services, m.backends, m.maglev, m.conntrack, m.snat, m.counters, m.drops} {
		if mp != nil {
			mp.Close()
		}
	}
}

// Frontend is one services map entry with its resolved backends.
type Frontend struct {
	Address  string // VIP:port
	Protocol string
	Scope    string // internal or external
	ID       uint32
	Count    int
	Backends []string // address:port of the backends in the Maglev table, sorted
	Slots    map[string]int
	Packets  uint64
	Bytes    uint64
}

// Backend is one backends map entry.
type Backend struct {
	ID       uint32
	Address  string
	Protocol string
	Local    bool
}

// Conn is one conntrack (or SNAT) entry.
type Conn struct {
	Kind      string // fwd, rev, snat
	Protocol  string
	Src, Dst  string
	NAT       string // fwd: backend; rev: frontend restored as source; snat: client
	SNATPort  int
	State     string
	ExpiresIn time.Duration
	ServiceID uint32
	BackendID uint32
}

func addrPort(a [4]byte, port uint16) string {
	return net.JoinHostPort(net.IP(a[:]).String(), strconv.Itoa(int(ntohs(port))))
}

// Backends lists the backends map.
func (m *Maps) Backends() ([]Backend, error) {
	var out []Backend
	var id uint32
	var b backendVal
	it := m.backends.Iterate()
	for it.Next(&id, &b) {
		out = append(out, Backend{ID: id, Address: addrPort(b.Addr, b.Port), Protocol: protoName(b.Proto), Local: b.Flags&backendFlagLocal != 0})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, it.Err()
}

// Frontends lists the services map with backends resolved through the Maglev tables.
func (m *Maps) Frontends() ([]Frontend, error) {
	bs, err := m.Backends()
	if err != nil {
		return nil, err
	}
	byID := map[uint32]string{}
	for _, b := range bs {
		byID[b.ID] = b.Address
	}
	tables := map[uint32]map[string]int{}
	var out []Frontend
	var k svcKey
	var v svcVal
	it := m.services.Iterate()
	for it.Next(&k, &v) {
		slots, ok := tables[v.SvcID]
		if !ok {
			slots = map[string]int{}
			var tab maglevVal
			if err := m.maglev.Lookup(v.SvcID, &tab); err == nil && v.Count > 0 {
				for _, id := range tab.IDs {
					name, ok := byID[id]
					if !ok {
						name = fmt.Sprintf("missing#%d", id)
					}
					slots[name]++
				}
			}
			tables[v.SvcID] = slots
		}
		f := Frontend{Address: addrPort(k.VIP, k.Port), Protocol: protoName(k.Proto), Scope: "internal",
			ID: v.SvcID, Count: int(v.Count), Slots: slots}
		if k.Scope == scopeExternal {
			f.Scope = "external"
		}
		for b := range slots {
			f.Backends = append(f.Backends, b)
		}
		sort.Strings(f.Backends)
		var cs []counterVal
		if err := m.counters.Lookup(v.SvcID, &cs); err == nil {
			for _, c := range cs {
				f.Packets += c.Packets
				f.Bytes += c.Bytes
			}
		}
		out = append(out, f)
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		if out[i].Protocol != out[j].Protocol {
			return out[i].Protocol < out[j].Protocol
		}
		return out[i].Scope < out[j].Scope
	})
	return out, nil
}

// Conntrack lists conntrack and SNAT entries.
func (m *Maps) Conntrack() ([]Conn, error) {
	now := monotonicNow()
	left := func(exp uint64) time.Duration {
		if exp < now {
			return 0
		}
		return time.Duration(exp - now)
	}
	states := []string{"new", "established", "closing"}
	var out []Conn
	var k ctKey
	var v ctVal
	it := m.conntrack.Iterate()
	for it.Next(&k, &v) {
		c := Conn{Kind: "fwd", Protocol: protoName(k.Proto), Src: addrPort(k.Saddr, k.Sport), Dst: addrPort(k.Daddr, k.Dport),
			NAT: addrPort(v.NatAddr, v.NatPort), ExpiresIn: left(v.Expires), ServiceID: v.SvcID, BackendID: v.BackendID}
		if k.Dir == ctDirRev {
			c.Kind = "rev"
		}
		if v.Flags&ctFlagSNAT != 0 {
			c.SNATPort = int(ntohs(v.SnatPort))
		}
		if int(v.State) < len(states) {
			c.State = states[v.State]
		}
		out = append(out, c)
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	var sk snatKey
	var sv snatVal
	it = m.snat.Iterate()
	for it.Next(&sk, &sv) {
		out = append(out, Conn{Kind: "snat", Protocol: protoName(sk.Proto), Src: addrPort(sk.BackendAddr, sk.BackendPort),
			Dst: addrPort(sk.NodeAddr, sk.NodePort), NAT: addrPort(sv.ClientAddr, sv.ClientPort) + " via " + addrPort(sv.FrontendAddr, sv.FrontendPort),
			ExpiresIn: left(sv.Expires)})
	}
	return out, it.Err()
}

// Drops returns the drop counters by reason name.
func (m *Maps) Drops() (map[string]uint64, error) {
	d, err := readDrops(m.drops)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for r, n := range d {
		out[r.String()] = n
	}
	return out, nil
}
