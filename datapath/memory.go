package datapath

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// MapMemory reports each map's kernel memory (the "memlock" line of its fdinfo, which recent
// kernels compute from actual use).
func (d *Datapath) MapMemory() (map[string]uint64, error) {
	o := d.objs
	out := map[string]uint64{}
	for name, m := range map[string]*ebpf.Map{"services": o.services, "backends": o.backends, "maglev": o.maglev,
		"conntrack": o.conntrack, "snat": o.snat, "sock_rev": o.sockRev, "counters": o.counters, "drops": o.drops} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", m.FD()))
		if err != nil {
			return nil, fmt.Errorf("read fdinfo of map %s: %w", name, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "memlock:"); ok {
				n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				out[name] = n
			}
		}
	}
	return out, nil
}
