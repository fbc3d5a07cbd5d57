package dns

import (
	"container/list"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// cache is a size-bounded LRU of upstream answers. Entries expire with the
// smallest TTL of their records (RFC 2308 negative TTL for NXDOMAIN/NODATA)
// and served copies have their TTLs reduced by the time spent in the cache.
// Only forwarded answers go in here; cluster answers come straight from the
// index, so a watch event is visible on the very next query.
type respCache struct {
	mu    sync.Mutex
	size  int
	ll    *list.List
	items map[cacheKey]*list.Element
	now   func() time.Time
}

type cacheKey struct {
	name   string // lower case
	qtype  uint16
	do, cd bool
}

type cacheItem struct {
	key    cacheKey
	msg    *mdns.Msg
	stored time.Time
	expire time.Time
}

func newCache(size int) *respCache {
	return &respCache{size: size, ll: list.New(), items: make(map[cacheKey]*list.Element), now: time.Now}
}

// get returns a private copy of a fresh entry with decremented TTLs.
func (c *respCache) get(k cacheKey) *mdns.Msg {
	if c == nil {
		return nil
	}
	now := c.now()
	c.mu.Lock()
	el, ok := c.items[k]
	if !ok {
		c.mu.Unlock()
		return nil
	}
	it := el.Value.(*cacheItem)
	if !now.Before(it.expire) {
		c.ll.Remove(el)
		delete(c.items, k)
		c.mu.Unlock()
		return nil
	}
	c.ll.MoveToFront(el)
	msg, stored := it.msg, it.stored
	c.mu.Unlock()

	out := msg.Copy()
	age := uint32(now.Sub(stored) / time.Second)
	for _, sec := range [][]mdns.RR{out.Answer, out.Ns, out.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == mdns.TypeOPT {
				continue
			}
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return out
}

func (c *respCache) put(k cacheKey, msg *mdns.Msg, ttl time.Duration) {
	if c == nil || ttl <= 0 {
		return
	}
	now := c.now()
	it := &cacheItem{key: k, msg: msg, stored: now, expire: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value = it
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(it)
	for c.ll.Len() > c.size {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheItem).key)
	}
}

func (c *respCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// cacheTTL is how long an upstream answer may be cached: the minimum TTL of
// the answer and authority records for a positive answer, min(SOA TTL, SOA
// minimum) for NXDOMAIN or NODATA (RFC 2308 section 5), zero (do not cache)
// for errors, truncated answers and negative answers without SOA.
func cacheTTL(m *mdns.Msg, maxPos, maxNeg time.Duration) time.Duration {
	if m.Truncated {
		return 0
	}
	switch m.Rcode {
	case mdns.RcodeSuccess:
		if len(m.Answer) > 0 {
			min := uint32(1<<31 - 1)
			for _, sec := range [][]mdns.RR{m.Answer, m.Ns} {
				for _, rr := range sec {
					if t := rr.Header().Ttl; t < min {
						min = t
					}
				}
			}
			return capTTL(min, maxPos)
		}
		fallthrough
	case mdns.RcodeNameError:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*mdns.SOA); ok {
				return capTTL(min(soa.Hdr.Ttl, soa.Minttl), maxNeg)
			}
		}
	}
	return 0
}

func capTTL(ttl uint32, max time.Duration) time.Duration {
	d := time.Duration(ttl) * time.Second
	if d > max {
		return max
	}
	return d
}
