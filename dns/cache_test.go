package dns

import (
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func answerMsg(t *testing.T, rrs ...string) *mdns.Msg {
	m := new(mdns.Msg)
	for _, s := range rrs {
		rr := mustRR(t, s)
		if rr.Header().Rrtype == mdns.TypeSOA {
			m.Ns = append(m.Ns, rr)
		} else {
			m.Answer = append(m.Answer, rr)
		}
	}
	return m
}

func TestCacheTTL(t *testing.T) {
	maxPos, maxNeg := time.Hour, 5*time.Minute
	pos := answerMsg(t, "a. 300 IN A 192.0.2.1", "a. 60 IN A 192.0.2.2")
	if got := cacheTTL(pos, maxPos, maxNeg); got != 60*time.Second {
		t.Errorf("positive: %v, want the smallest TTL 60s", got)
	}
	if got := cacheTTL(answerMsg(t, "a. 86400 IN A 192.0.2.1"), maxPos, maxNeg); got != time.Hour {
		t.Errorf("capped positive: %v, want 1h", got)
	}
	neg := answerMsg(t, "a. 600 IN SOA ns. h. 1 2 3 4 30")
	neg.Rcode = mdns.RcodeNameError
	if got := cacheTTL(neg, maxPos, maxNeg); got != 30*time.Second {
		t.Errorf("NXDOMAIN: %v, want min(SOA TTL, minimum) = 30s", got)
	}
	nodata := answerMsg(t, "a. 20 IN SOA ns. h. 1 2 3 4 30")
	if got := cacheTTL(nodata, maxPos, maxNeg); got != 20*time.Second {
		t.Errorf("NODATA: %v, want 20s", got)
	}
	bare := new(mdns.Msg)
	bare.Rcode = mdns.RcodeNameError
	if got := cacheTTL(bare, maxPos, maxNeg); got != 0 {
		t.Errorf("NXDOMAIN without SOA: %v, want not cached", got)
	}
	sf := new(mdns.Msg)
	sf.Rcode = mdns.RcodeServerFailure
	if got := cacheTTL(sf, maxPos, maxNeg); got != 0 {
		t.Errorf("SERVFAIL: %v, want not cached", got)
	}
	tc := answerMsg(t, "a. 300 IN A 192.0.2.1")
	tc.Truncated = true
	if got := cacheTTL(tc, maxPos, maxNeg); got != 0 {
		t.Errorf("truncated: %v, want not cached", got)
	}
}

func TestCacheExpiryAndLRU(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache(2)
	c.now = func() time.Time { return now }
	k := func(n string) cacheKey { return cacheKey{name: n, qtype: mdns.TypeA} }
	c.put(k("a."), answerMsg(t, "a. 100 IN A 192.0.2.1"), 100*time.Second)
	now = now.Add(40 * time.Second)
	m := c.get(k("a."))
	if m == nil || m.Answer[0].Header().Ttl != 60 {
		t.Fatalf("after 40s: %v, want TTL 60", m)
	}
	// The served copy is private.
	m.Answer[0].Header().Ttl = 1
	if m2 := c.get(k("a.")); m2.Answer[0].Header().Ttl != 60 {
		t.Errorf("cache entry changed through a served copy")
	}
	now = now.Add(60 * time.Second)
	if m := c.get(k("a.")); m != nil {
		t.Errorf("served after expiry: %v", m)
	}
	c.put(k("a."), answerMsg(t, "a. 100 IN A 192.0.2.1"), time.Minute)
	c.put(k("b."), answerMsg(t, "b. 100 IN A 192.0.2.2"), time.Minute)
	c.get(k("a.")) // a is now the most recent
	c.put(k("c."), answerMsg(t, "c. 100 IN A 192.0.2.3"), time.Minute)
	if c.len() != 2 || c.get(k("b.")) != nil || c.get(k("a.")) == nil || c.get(k("c.")) == nil {
		t.Errorf("LRU: want a and c kept, b evicted; len %d", c.len())
	}
}

func TestIndexEmptyNonTerminals(t *testing.T) {
	ix := newIndex("cluster.local.")
	rr := mustRR(t, "x.y.ns.svc.cluster.local. 5 IN A 10.0.0.1")
	ix.setSource("s1", recordSet{"x.y.ns.svc.cluster.local.": {rr}})
	ix.setSource("s2", recordSet{"z.ns.svc.cluster.local.": {rr}})
	for _, n := range []string{"y.ns.svc.cluster.local.", "ns.svc.cluster.local.", "svc.cluster.local."} {
		if _, ok := ix.lookup(n); !ok {
			t.Errorf("%s: missing empty non-terminal", n)
		}
	}
	ix.setSource("s1", nil)
	if _, ok := ix.lookup("y.ns.svc.cluster.local."); ok {
		t.Errorf("y.ns.svc stays after its only child went")
	}
	if _, ok := ix.lookup("ns.svc.cluster.local."); !ok {
		t.Errorf("ns.svc went while z.ns.svc is still there")
	}
	ix.setSource("s2", nil)
	if len(ix.ents) != 0 || len(ix.names) != 0 {
		t.Errorf("leftovers after deleting everything: %v %v", ix.ents, ix.names)
	}
}
