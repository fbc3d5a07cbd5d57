package dns

import (
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

// index holds every record of the cluster zone (and the PTR records of
// cluster IPs) keyed by lower-case owner name. Writers replace whole
// per-source record sets under the write lock; readers take the read lock for
// one map lookup and get a slice whose elements are never modified afterwards
// (writers build new slices), so they use it after unlocking.
type index struct {
	zone string // lower-case FQDN with the trailing dot

	// gen counts writes. It is bumped after every change, still under the
	// write lock, so an answer computed after loading gen g used data at
	// least as new as g: the packed-answer caches tag entries with the gen
	// loaded before the lookup and drop them once gen has moved on.
	gen atomic.Uint64

	mu    sync.RWMutex
	names map[string]*entry
	// ents counts, for each name inside the zone, the owner names below it:
	// a name with a count > 0 and no records is an empty non-terminal, which
	// exists (NOERROR/NODATA), unlike a name that is not there (NXDOMAIN).
	ents map[string]int
	// srcs remembers what each source (a Service) contributed, so that an
	// update replaces exactly that and a delete removes exactly that.
	srcs map[string]map[string][]mdns.RR

	// Pod IPs per namespace for verified pod records.
	podIPs map[podKey]int
	podNS  map[string]int
	pods   map[string][]podKey // "ns/name" -> the keys it added
}

type podKey struct {
	ns string
	ip netip.Addr
}

type entry struct {
	bySrc map[string][]mdns.RR
	all   []mdns.RR // concatenation of bySrc in source order; read-only
}

func newIndex(zone string) *index {
	return &index{
		zone:   zone,
		names:  make(map[string]*entry),
		ents:   make(map[string]int),
		srcs:   make(map[string]map[string][]mdns.RR),
		podIPs: make(map[podKey]int),
		podNS:  make(map[string]int),
		pods:   make(map[string][]podKey),
	}
}

// lookup returns the records at name and whether the name exists at all
// (it may exist with no records as an empty non-terminal).
func (ix *index) lookup(name string) ([]mdns.RR, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if e := ix.names[name]; e != nil {
		return e.all, true
	}
	return nil, ix.ents[name] > 0
}

// setSource replaces everything src contributed with recs (nil deletes).
func (ix *index) setSource(src string, recs map[string][]mdns.RR) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	defer ix.gen.Add(1)
	old := ix.srcs[src]
	for name := range old {
		if _, keep := recs[name]; keep {
			continue
		}
		e := ix.names[name]
		delete(e.bySrc, src)
		if len(e.bySrc) == 0 {
			delete(ix.names, name)
		} else {
			e.all = flatten(e.bySrc)
		}
		ix.addAncestors(name, -1)
	}
	for name, rrs := range recs {
		e := ix.names[name]
		if e == nil {
			e = &entry{bySrc: make(map[string][]mdns.RR, 1)}
			ix.names[name] = e
		}
		if _, had := old[name]; !had {
			ix.addAncestors(name, +1)
		}
		e.bySrc[src] = rrs
		e.all = flatten(e.bySrc)
	}
	if len(recs) == 0 {
		delete(ix.srcs, src)
	} else {
		ix.srcs[src] = recs
	}
}

func flatten(bySrc map[string][]mdns.RR) []mdns.RR {
	if len(bySrc) == 1 {
		for _, rrs := range bySrc {
			return rrs
		}
	}
	keys := make([]string, 0, len(bySrc))
	for k := range bySrc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var all []mdns.RR
	for _, k := range keys {
		all = append(all, bySrc[k]...)
	}
	return all
}

// addAncestors adjusts the empty-non-terminal counts of every name strictly
// between name and the zone apex (the apex always exists through its SOA).
// Names outside the zone (reverse PTR owners) are not counted: the server is
// not authoritative for in-addr.arpa and forwards what it does not have.
func (ix *index) addAncestors(name string, d int) {
	if !strings.HasSuffix(name, "."+ix.zone) {
		return
	}
	for {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return
		}
		name = name[i+1:]
		if len(name) <= len(ix.zone) {
			return
		}
		if n := ix.ents[name] + d; n > 0 {
			ix.ents[name] = n
		} else {
			delete(ix.ents, name)
		}
	}
}

// setPod records the IPs of one pod (nil deletes it) for verified pod records.
func (ix *index) setPod(key, ns string, ips []netip.Addr) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	defer ix.gen.Add(1)
	for _, k := range ix.pods[key] {
		if n := ix.podIPs[k] - 1; n > 0 {
			ix.podIPs[k] = n
		} else {
			delete(ix.podIPs, k)
		}
		if n := ix.podNS[k.ns] - 1; n > 0 {
			ix.podNS[k.ns] = n
		} else {
			delete(ix.podNS, k.ns)
		}
	}
	delete(ix.pods, key)
	if len(ips) == 0 {
		return
	}
	keys := make([]podKey, 0, len(ips))
	for _, ip := range ips {
		k := podKey{ns: ns, ip: ip}
		keys = append(keys, k)
		ix.podIPs[k]++
		ix.podNS[ns]++
	}
	ix.pods[key] = keys
}

// hasPod reports whether a pod in ns has ip, and whether ns has any pod.
func (ix *index) hasPod(ns string, ip netip.Addr) (podExists, nsExists bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ip.IsValid() {
		podExists = ix.podIPs[podKey{ns: ns, ip: ip}] > 0
	}
	return podExists, ix.podNS[ns] > 0
}
