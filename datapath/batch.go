package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// batch collects a Sync's map writes so they go to the kernel in a few BPF_MAP_*_BATCH
// calls instead of one syscall per entry. flush applies them in the order that keeps every
// reference valid: backends, tables, frontends; then deletions in reverse.
type batch struct {
	backendK []uint32
	backendV []backendVal
	maglevK  []uint32
	maglevV  []maglevVal
	svcK     []svcKey
	svcV     []svcVal

	svcDel     []svcKey
	maglevDel  []uint32
	counterDel []uint32
	backendDel []uint32

	// Ids freed during the batch are not reused before flush, so a put and a delete of the
	// same id never meet in one flush.
	freedSvc     map[uint32]bool
	freedBackend map[uint32]bool
}

func newBatch() *batch {
	return &batch{freedSvc: map[uint32]bool{}, freedBackend: map[uint32]bool{}}
}

func (d *Datapath) putBackend(id uint32, b backendVal) error {
	if bt := d.batch; bt != nil {
		bt.backendK, bt.backendV = append(bt.backendK, id), append(bt.backendV, b)
		return nil
	}
	return d.objs.backends.Put(id, b)
}

func (d *Datapath) putMaglev(id uint32, t *maglevVal) error {
	if bt := d.batch; bt != nil {
		bt.maglevK, bt.maglevV = append(bt.maglevK, id), append(bt.maglevV, *t)
		return nil
	}
	return d.objs.maglev.Put(id, t)
}

func (d *Datapath) putService(k svcKey, v svcVal) error {
	if bt := d.batch; bt != nil {
		bt.svcK, bt.svcV = append(bt.svcK, k), append(bt.svcV, v)
		return nil
	}
	return d.objs.services.Put(k, v)
}

func (d *Datapath) delService(k svcKey) error {
	if bt := d.batch; bt != nil {
		bt.svcDel = append(bt.svcDel, k)
		return nil
	}
	return deleteIgnoreMissing(d.objs.services, k)
}

func (d *Datapath) delGroupMaps(id uint32) error {
	if bt := d.batch; bt != nil {
		bt.maglevDel, bt.counterDel = append(bt.maglevDel, id), append(bt.counterDel, id)
		bt.freedSvc[id] = true
		return nil
	}
	return errors.Join(deleteIgnoreMissing(d.objs.maglev, id), deleteIgnoreMissing(d.objs.counters, id))
}

func (d *Datapath) delBackend(id uint32) error {
	if bt := d.batch; bt != nil {
		bt.backendDel = append(bt.backendDel, id)
		bt.freedBackend[id] = true
		return nil
	}
	return deleteIgnoreMissing(d.objs.backends, id)
}

func (d *Datapath) flush() error {
	bt, o := d.batch, d.objs
	d.batch = nil
	if bt == nil {
		return nil
	}
	if err := batchPut(o.backends, bt.backendK, bt.backendV); err != nil {
		return fmt.Errorf("write backends: %w", err)
	}
	if err := batchPut(o.maglev, bt.maglevK, bt.maglevV); err != nil {
		return fmt.Errorf("write maglev tables: %w", err)
	}
	if err := batchPut(o.services, bt.svcK, bt.svcV); err != nil {
		return fmt.Errorf("write frontends: %w", err)
	}
	return errors.Join(batchDelete(o.services, bt.svcDel), batchDelete(o.maglev, bt.maglevDel),
		batchDelete(o.counters, bt.counterDel), batchDelete(o.backends, bt.backendDel))
}

const batchChunk = 4096

func batchPut[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	for i := 0; i < len(keys); i += batchChunk {
		j := min(i+batchChunk, len(keys))
		if _, err := m.BatchUpdate(keys[i:j], vals[i:j], nil); err != nil {
			if !errors.Is(err, ebpf.ErrNotSupported) {
				return err
			}
			for k := i; k < j; k++ {
				if err := m.Put(keys[k], vals[k]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// batchDelete deletes keys; a batch stops at the first missing key, so the rest of that
// chunk is then deleted one by one, ignoring missing ones.
func batchDelete[K any](m *ebpf.Map, keys []K) error {
	for i := 0; i < len(keys); i += batchChunk {
		j := min(i+batchChunk, len(keys))
		n, err := m.BatchDelete(keys[i:j], nil)
		if err == nil {
			continue
		}
		for k := i + n; k < j; k++ {
			if err := deleteIgnoreMissing(m, keys[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// batchKeys lists a map's keys with batch lookups; values are read into one reused chunk
// (the kernel has no keys-only batch) and dropped.
func batchKeys[K, V any](m *ebpf.Map) ([]K, error) {
	var out []K
	var cursor ebpf.MapBatchCursor
	chunk := batchChunk
	if m.ValueSize() > 256 {
		chunk = 256 // maglev tables: keep the scratch buffer small
	}
	keys := make([]K, chunk)
	vals := make([]V, chunk)
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		out = append(out, keys[:n]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
