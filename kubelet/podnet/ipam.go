package podnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ErrExhausted means every address of the pod CIDR is in use.
var ErrExhausted = errors.New("pod CIDR exhausted")

// IPAM hands out addresses of one pod CIDR. Each allocation is a file named after the address
// holding its owner, created with O_EXCL, so state survives restarts and an address is never
// handed out twice. The last allocated address is remembered so freed addresses are reused
// last (round robin), which keeps stale conntrack or ARP entries from hitting a new pod.
//
// The files are the truth; the IPAM keeps an index of them (read once) so an allocation does
// not read every file. One IPAM per directory at a time (one agent per node).
type IPAM struct {
	mu     sync.Mutex
	dir    string
	prefix netip.Prefix
	owners map[string]netip.Addr // nil until loaded
}

// NewIPAM keeps its state for cidr under dir.
func NewIPAM(dir, cidr string) (*IPAM, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", cidr, err)
	}
	p = p.Masked()
	if !p.Addr().Is4() || p.Bits() > 30 {
		return nil, fmt.Errorf("pod CIDR %q: need an IPv4 prefix of /30 or larger", cidr)
	}
	d := filepath.Join(dir, strings.ReplaceAll(p.String(), "/", "_"))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, fmt.Errorf("ipam dir: %w", err)
	}
	return &IPAM{dir: d, prefix: p}, nil
}

// Prefix is the pod CIDR.
func (a *IPAM) Prefix() netip.Prefix { return a.prefix }

// Gateway is the first address of the CIDR, which the node side of every veth answers for.
func (a *IPAM) Gateway() netip.Addr { return a.prefix.Addr().Next() }

func (a *IPAM) size() uint32 { return 1 << (32 - a.prefix.Bits()) }

func (a *IPAM) nth(i uint32) netip.Addr {
	base := binary.BigEndian.Uint32(a.prefix.Addr().AsSlice())
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], base+i)
	return netip.AddrFrom4(b)
}

func (a *IPAM) index(ip netip.Addr) uint32 {
	return binary.BigEndian.Uint32(ip.AsSlice()) - binary.BigEndian.Uint32(a.prefix.Addr().AsSlice())
}

// Allocate returns owner's address, allocating one if owner has none.
func (a *IPAM) Allocate(owner string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.lookup(owner); ok {
		return ip, nil
	}
	// Usable: index 2 .. size-2 (0 network, 1 gateway, size-1 broadcast).
	n := a.size()
	start := uint32(2)
	if last, err := os.ReadFile(filepath.Join(a.dir, "last")); err == nil {
		if ip, err := netip.ParseAddr(strings.TrimSpace(string(last))); err == nil && a.prefix.Contains(ip) {
			start = a.index(ip) + 1
		}
	}
	usable := n - 3
	for k := uint32(0); k < usable; k++ {
		i := 2 + (start-2+k)%usable
		ip := a.nth(i)
		f, err := os.OpenFile(filepath.Join(a.dir, ip.String()), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return netip.Addr{}, fmt.Errorf("reserve %s: %w", ip, err)
		}
		// No fsync: the file must outlive the agent process, which the page cache does; a
		// machine crash takes the pods and their addresses with it.
		_, werr := f.WriteString(owner)
		if err := errors.Join(werr, f.Close()); err != nil {
			os.Remove(f.Name())
			return netip.Addr{}, fmt.Errorf("reserve %s: %w", ip, err)
		}
		os.WriteFile(filepath.Join(a.dir, "last"), []byte(ip.String()), 0o600)
		if a.owners != nil {
			a.owners[owner] = ip
		}
		return ip, nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %s has no free address for %s", ErrExhausted, a.prefix, owner)
}

// Lookup returns owner's address if it has one.
func (a *IPAM) Lookup(owner string) (netip.Addr, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookup(owner)
}

func (a *IPAM) lookup(owner string) (netip.Addr, bool) {
	if a.owners == nil {
		all, err := a.list()
		if err != nil {
			return netip.Addr{}, false
		}
		a.owners = map[string]netip.Addr{}
		for ip, o := range all {
			a.owners[o] = ip
		}
	}
	ip, ok := a.owners[owner]
	return ip, ok
}

// Release frees owner's address; releasing nothing is not an error.
func (a *IPAM) Release(owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	all, err := a.list()
	if err != nil {
		return err
	}
	for ip, o := range all {
		if o == owner {
			if err := os.Remove(filepath.Join(a.dir, ip.String())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("release %s: %w", ip, err)
			}
		}
	}
	if a.owners != nil {
		delete(a.owners, owner)
	}
	return nil
}

// Allocations maps every allocated address to its owner.
func (a *IPAM) Allocations() (map[netip.Addr]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.list()
}

func (a *IPAM) list() (map[netip.Addr]string, error) {
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, fmt.Errorf("read ipam dir: %w", err)
	}
	out := map[netip.Addr]string{}
	for _, e := range ents {
		ip, err := netip.ParseAddr(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(a.dir, e.Name()))
		if err != nil {
			continue
		}
		out[ip] = string(b)
	}
	return out, nil
}

func toIP(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }
