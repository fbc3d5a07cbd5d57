package datapath

import (
	"fmt"
)

// Drops returns the drop counters summed over CPUs, by reason.
func (d *Datapath) Drops() (map[DropReason]uint64, error) {
	return readDrops(d.objs.drops)
}

// ServiceStat is one backend set's traffic counters.
type ServiceStat struct {
	Namespace, Name, Port, Protocol string
	Local                           bool // the externalTrafficPolicy=Local subset
	ID                              uint32
	Packets, Bytes                  uint64
}

// ServiceStats returns the per-service counters of every programmed Service.
func (d *Datapath) ServiceStats() ([]ServiceStat, error) {
	d.mu.Lock()
	groups := make([]groupKey, 0, len(d.state.groups))
	ids := make([]uint32, 0, len(d.state.groups))
	for k, g := range d.state.groups {
		groups = append(groups, k)
		ids = append(ids, g.id)
	}
	d.mu.Unlock()
	out := make([]ServiceStat, 0, len(ids))
	for i, id := range ids {
		var vals []counterVal
		st := ServiceStat{Namespace: groups[i].Namespace, Name: groups[i].Name, Port: groups[i].Port,
			Protocol: protoName(groups[i].Proto), Local: groups[i].Local, ID: id}
		if err := d.objs.counters.Lookup(id, &vals); err == nil {
			for _, v := range vals {
				st.Packets += v.Packets
				st.Bytes += v.Bytes
			}
		}
		out = append(out, st)
	}
	return out, nil
}

func readDrops(m interface {
	Lookup(key, valueOut any) error
}) (map[DropReason]uint64, error) {
	out := map[DropReason]uint64{}
	for i := 1; i < dropMax; i++ {
		var vals []uint64
		if err := m.Lookup(uint32(i), &vals); err != nil {
			return nil, fmt.Errorf("read drops[%d]: %w", i, err)
		}
		var n uint64
		for _, v := range vals {
			n += v
		}
		if n > 0 {
			out[DropReason(-i)] = n
		}
	}
	return out, nil
}
