package datapath

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"
)

// gcInterval is how often expired conntrack and SNAT entries are deleted. The LRU maps
// would evict them anyway under pressure; GC keeps dumps and capacity honest.
const gcInterval = 30 * time.Second

func monotonicNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

func (d *Datapath) runGC(ctx context.Context) {
	defer close(d.gcDone)
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := d.GCConntrack()
			if err != nil {
				slog.Warn("datapath: conntrack gc", "err", err)
			} else if n > 0 {
				slog.Debug("datapath: conntrack gc", "deleted", n)
			}
		}
	}
}

// GCConntrack deletes expired conntrack and SNAT entries and reports how many.
func (d *Datapath) GCConntrack() (int, error) {
	now := monotonicNow()
	o := d.objs
	var k ctKey
	var v ctVal
	var stale []ctKey
	it := o.conntrack.Iterate()
	for it.Next(&k, &v) {
		if v.Expires < now {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, k := range stale {
		if deleteIgnoreMissing(o.conntrack, k) == nil {
			n++
		}
	}
	var sk snatKey
	var sv snatVal
	var staleS []snatKey
	it = o.snat.Iterate()
	for it.Next(&sk, &sv) {
		if sv.Expires < now {
			staleS = append(staleS, sk)
		}
	}
	if err := it.Err(); err != nil {
		return n, err
	}
	for _, k := range staleS {
		if deleteIgnoreMissing(o.snat, k) == nil {
			n++
		}
	}
	return n, nil
}
