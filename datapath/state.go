package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cilium/ebpf"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// group is one backend set as it is in the maps.
type group struct {
	id        uint32
	key       groupKey
	frontends map[svcKey]svcVal
	backends  []uint32 // ids, in Maglev input order
	sig       string   // the backend names joined: equal sig = equal Maglev table
}

// state is the Go-side view of the maps, so updates write only what changed.
type state struct {
	groups        map[groupKey]*group
	byID          map[uint32]*group
	byService     map[nsName]map[groupKey]bool
	frontendOwner map[svcKey]groupKey

	backendIDs  map[backendVal]uint32
	backendByID map[uint32]backendVal
	backendRefs map[uint32]int
	nextSvcID   uint32
	nextBackend uint32

	// What a previous agent left in the maps: ids are reused for the same frontends and
	// backends, so adoption rewrites identical entries, and Sync deletes the rest.
	adopted         map[svcKey]svcVal
	adoptedBackends map[backendVal]uint32
	adoptedSvcIDs   map[uint32]bool
	adoptedBackIDs  map[uint32]bool

	// Ids freed by the current batch (see batch.go), shared with it.
	freedSvc, freedBackend map[uint32]bool
}

func newState() *state {
	return &state{
		groups: map[groupKey]*group{}, byID: map[uint32]*group{}, byService: map[nsName]map[groupKey]bool{},
		frontendOwner: map[svcKey]groupKey{}, backendIDs: map[backendVal]uint32{},
		backendByID: map[uint32]backendVal{}, backendRefs: map[uint32]int{},
		nextSvcID: 1, nextBackend: 1,
		adopted: map[svcKey]svcVal{}, adoptedBackends: map[backendVal]uint32{},
		adoptedSvcIDs: map[uint32]bool{}, adoptedBackIDs: map[uint32]bool{},
	}
}

func adoptState(o *objects) (*state, error) {
	s := newState()
	var k svcKey
	var v svcVal
	it := o.services.Iterate()
	for it.Next(&k, &v) {
		s.adopted[k] = v
		s.adoptedSvcIDs[v.SvcID] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read pinned services map: %w", err)
	}
	var id uint32
	var b backendVal
	it = o.backends.Iterate()
	for it.Next(&id, &b) {
		s.adoptedBackends[b] = id
		s.adoptedBackIDs[id] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read pinned backends map: %w", err)
	}
	return s, nil
}

func (s *state) allocSvcID(frontends []svcKey) uint32 {
	for _, fk := range frontends {
		if v, ok := s.adopted[fk]; ok && s.byID[v.SvcID] == nil && !s.freedSvc[v.SvcID] {
			return v.SvcID
		}
	}
	for s.byID[s.nextSvcID] != nil || s.adoptedIDInUse(s.nextSvcID) || s.nextSvcID == 0 || s.freedSvc[s.nextSvcID] {
		s.nextSvcID++
	}
	id := s.nextSvcID
	s.nextSvcID++
	return id
}

// adoptedIDInUse keeps fresh ids away from adopted ones until Sync settles them.
func (s *state) adoptedIDInUse(id uint32) bool {
	return s.adoptedSvcIDs[id]
}

func (s *state) allocBackendID(b backendVal) uint32 {
	if id, ok := s.adoptedBackends[b]; ok {
		if _, used := s.backendByID[id]; !used && !s.freedBackend[id] {
			return id
		}
	}
	for {
		id := s.nextBackend
		s.nextBackend++
		if id == 0 {
			continue
		}
		if _, used := s.backendByID[id]; used {
			continue
		}
		if s.adoptedBackendID(id) || s.freedBackend[id] {
			continue
		}
		return id
	}
}

func (s *state) adoptedBackendID(id uint32) bool {
	return s.adoptedBackIDs[id]
}

// UpsertService programs one Service from its EndpointSlices (slices of other Services are
// ignored), writing only what changed. Invalid input returns an error and changes nothing.
func (d *Datapath) UpsertService(svc *corev1.Service, slices []*discoveryv1.EndpointSlice) error {
	if svc == nil {
		return errors.New("upsert service: nil Service")
	}
	specs, err := d.desired(svc, slices)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.apply(nsName{svc.Namespace, svc.Name}, specs)
}

// DeleteService removes every map entry of a Service.
func (d *Datapath) DeleteService(namespace, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.apply(nsName{namespace, name}, nil)
}

// Sync makes the maps hold exactly the given Services: it programs each one and deletes
// every other entry, including ones a previous agent left behind.
func (d *Datapath) Sync(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) error {
	bySvc := map[nsName][]*discoveryv1.EndpointSlice{}
	for _, sl := range slices {
		if sl == nil {
			continue
		}
		n := nsName{sl.Namespace, sl.Labels[serviceLabel]}
		bySvc[n] = append(bySvc[n], sl)
	}
	want := map[nsName][]groupSpec{}
	var errs []error
	for _, svc := range svcs {
		if svc == nil {
			continue
		}
		n := nsName{svc.Namespace, svc.Name}
		specs, err := d.desired(svc, bySvc[n])
		if err != nil {
			errs = append(errs, err) // skip the bad Service, program the rest
			continue
		}
		want[n] = specs
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.batch = newBatch()
	nb := 0
	for _, sl := range slices {
		if sl != nil {
			nb += len(sl.Endpoints)
		}
	}
	d.batch.maglevK, d.batch.maglevV = make([]uint32, 0, len(want)), make([]maglevVal, 0, len(want))
	d.batch.svcK, d.batch.svcV = make([]svcKey, 0, len(want)), make([]svcVal, 0, len(want))
	d.batch.backendK, d.batch.backendV = make([]uint32, 0, nb), make([]backendVal, 0, nb)
	d.state.freedSvc, d.state.freedBackend = d.batch.freedSvc, d.batch.freedBackend
	defer func() { d.batch = nil; d.state.freedSvc, d.state.freedBackend = nil, nil }()
	for n := range d.state.byService {
		if _, ok := want[n]; !ok {
			if err := d.apply(n, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for n, specs := range want {
		if err := d.apply(n, specs); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.flush(); err != nil {
		// The Go view may now be ahead of the maps: forget what it knows so the next Sync
		// rewrites everything.
		d.invalidate()
		errs = append(errs, err)
	}
	d.state.freedSvc, d.state.freedBackend = nil, nil
	if err := d.sweep(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// apply moves one Service's groups from what the state holds to specs. Order keeps every
// reference valid for packets in flight: backends before tables, tables before frontends,
// and deletions in the reverse order.
func (d *Datapath) apply(n nsName, specs []groupSpec) error {
	s := d.state
	keep := map[groupKey]bool{}
	for _, spec := range specs {
		keep[spec.key] = true
		g := s.groups[spec.key]
		isNew := g == nil
		if isNew {
			g = &group{key: spec.key, frontends: map[svcKey]svcVal{}}
			g.id = s.allocSvcID(spec.frontends)
		}
		ids := make([]uint32, len(spec.backends))
		names := make([]string, len(spec.backends))
		for i, b := range spec.backends {
			id, ok := s.backendIDs[b]
			if !ok {
				id = s.allocBackendID(b)
				if err := d.putBackend(id, b); err != nil {
					return fmt.Errorf("service %s: write backend %s: %w", spec.key, backendName(b), err)
				}
				s.backendIDs[b], s.backendByID[id] = id, b
			}
			ids[i], names[i] = id, backendIdent(b)
		}
		for _, id := range ids {
			s.backendRefs[id]++
		}
		sig := strings.Join(names, "")
		if isNew || sig != g.sig {
			if len(names) > MaglevM {
				slog.Warn("datapath: service has more backends than Maglev slots; some get none", "service", spec.key.String(), "backends", len(names), "slots", MaglevM)
			}
			table := maglevVal{IDs: maglevTable(names, ids)}
			if err := d.putMaglev(g.id, &table); err != nil {
				d.releaseBackends(ids)
				return fmt.Errorf("service %s: write maglev table: %w", spec.key, err)
			}
		}
		old := g.backends
		g.backends, g.sig = ids, sig
		if isNew {
			s.groups[spec.key], s.byID[g.id] = g, g
		}
		val := svcVal{SvcID: g.id, Count: uint16(min(len(ids), 65535))}
		want := map[svcKey]bool{}
		for _, fk := range spec.frontends {
			if owner, ok := s.frontendOwner[fk]; ok && owner != spec.key {
				slog.Warn("datapath: frontend already used by another service; skipped", "frontend", frontendString(fk), "service", spec.key.String(), "owner", owner.String())
				continue
			}
			want[fk] = true
			if cur, ok := g.frontends[fk]; ok && cur == val {
				continue
			}
			if err := d.putService(fk, val); err != nil {
				return fmt.Errorf("service %s: write frontend %s: %w", spec.key, frontendString(fk), err)
			}
			g.frontends[fk] = val
			s.frontendOwner[fk] = spec.key
		}
		for fk := range g.frontends {
			if !want[fk] {
				if err := d.delService(fk); err != nil {
					return fmt.Errorf("service %s: delete frontend %s: %w", spec.key, frontendString(fk), err)
				}
				delete(g.frontends, fk)
				delete(s.frontendOwner, fk)
			}
		}
		d.releaseBackends(old)
	}
	for k := range s.byService[n] {
		if !keep[k] {
			if err := d.removeGroup(s.groups[k]); err != nil {
				return err
			}
		}
	}
	if len(keep) == 0 {
		delete(s.byService, n)
	} else {
		s.byService[n] = keep
	}
	return nil
}

func (d *Datapath) removeGroup(g *group) error {
	s := d.state
	for fk := range g.frontends {
		if err := d.delService(fk); err != nil {
			return fmt.Errorf("service %s: delete frontend %s: %w", g.key, frontendString(fk), err)
		}
		delete(s.frontendOwner, fk)
	}
	if err := d.delGroupMaps(g.id); err != nil {
		return fmt.Errorf("service %s: delete maglev table and counters: %w", g.key, err)
	}
	d.releaseBackends(g.backends)
	delete(s.groups, g.key)
	delete(s.byID, g.id)
	return nil
}

// releaseBackends drops one reference to each id and deletes unreferenced backends.
// Established flows are unaffected: conntrack holds the backend's address, not its id.
func (d *Datapath) releaseBackends(ids []uint32) {
	s := d.state
	for _, id := range ids {
		s.backendRefs[id]--
		if s.backendRefs[id] > 0 {
			continue
		}
		delete(s.backendRefs, id)
		if err := d.delBackend(id); err != nil {
			slog.Warn("datapath: delete backend", "id", id, "err", err)
		}
		b := s.backendByID[id]
		delete(s.backendByID, id)
		delete(s.backendIDs, b)
	}
}

// sweep deletes map entries that the state does not know: leftovers from an earlier agent
// or from a failed write. It reads the maps with batch lookups.
func (d *Datapath) sweep() error {
	s, o := d.state, d.objs
	var errs []error
	fks, err := batchKeys[svcKey, svcVal](o.services)
	errs = append(errs, err)
	var staleF []svcKey
	for _, k := range fks {
		if _, ok := s.frontendOwner[k]; !ok {
			staleF = append(staleF, k)
		}
	}
	errs = append(errs, batchDelete(o.services, staleF))
	ids, err := batchKeys[uint32, maglevVal](o.maglev)
	errs = append(errs, err)
	var staleIDs []uint32
	for _, id := range ids {
		if s.byID[id] == nil {
			staleIDs = append(staleIDs, id)
		}
	}
	for id := range s.adoptedSvcIDs {
		if s.byID[id] == nil {
			staleIDs = append(staleIDs, id)
		}
	}
	errs = append(errs, batchDelete(o.maglev, staleIDs), batchDelete(o.counters, staleIDs))
	bids, err := batchKeys[uint32, backendVal](o.backends)
	errs = append(errs, err)
	var staleB []uint32
	for _, id := range bids {
		if _, ok := s.backendByID[id]; !ok {
			staleB = append(staleB, id)
		}
	}
	errs = append(errs, batchDelete(o.backends, staleB))
	s.adopted = map[svcKey]svcVal{}
	s.adoptedBackends = map[backendVal]uint32{}
	s.adoptedSvcIDs = map[uint32]bool{}
	s.adoptedBackIDs = map[uint32]bool{}
	return errors.Join(errs...)
}

// invalidate makes every group look unwritten, so the next apply rewrites it.
func (d *Datapath) invalidate() {
	for _, g := range d.state.groups {
		g.sig = "\x00unknown"
		for k := range g.frontends {
			g.frontends[k] = svcVal{}
		}
	}
}

func deleteIgnoreMissing(m *ebpf.Map, key any) error {
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// keysU32 lists a map's u32 keys without reading values (per-CPU values are large).
func keysU32(m *ebpf.Map) ([]uint32, error) {
	var out []uint32
	var key uint32
	var prev any
	for {
		if err := m.NextKey(prev, &key); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return out, nil
			}
			return out, err
		}
		out = append(out, key)
		k := key
		prev = &k
	}
}
