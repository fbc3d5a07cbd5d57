/* Address translation: DNAT to a backend, reverse (source) translation on replies, SNAT for
 * remote NodePort backends, and FIB redirects that bypass the stack's martian-source check. */
#pragma once

#include "csum.h"
#include "maps.h"
#include "drop.h"

#define L4_SPORT_OFF 0
#define L4_DPORT_OFF 2

static __always_inline int nat_dst(struct __sk_buff *skb, struct pkt *p, __be32 addr, __be16 port)
{
	if (rewrite_addr(skb, p, IP_DADDR_OFF, p->daddr, addr) < 0)
		return DROP_CSUM;
	if (rewrite_port(skb, p, L4_DPORT_OFF, p->dport, port) < 0)
		return DROP_CSUM;
	p->daddr = addr;
	p->dport = port;
	return 0;
}

static __always_inline int nat_src(struct __sk_buff *skb, struct pkt *p, __be32 addr, __be16 port)
{
	if (rewrite_addr(skb, p, IP_SADDR_OFF, p->saddr, addr) < 0)
		return DROP_CSUM;
	if (rewrite_port(skb, p, L4_SPORT_OFF, p->sport, port) < 0)
		return DROP_CSUM;
	p->saddr = addr;
	p->sport = port;
	return 0;
}

#ifndef AF_INET
#define AF_INET 2
#endif

/* fib_redirect sends a rewritten packet straight out of the device the routing table picks:
 * a packet whose source is now a local address would be dropped as martian by the stack. */
static __always_inline int fib_redirect(struct __sk_buff *skb, const struct pkt *p)
{
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.l4_protocol = p->proto;
	fib.tot_len = skb->len - ETH_HLEN;
	fib.ipv4_src = p->saddr;
	fib.ipv4_dst = p->daddr;
	fib.ifindex = skb->ifindex;

	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0) {
			count_drop(DROP_CSUM);
			return VERDICT_DROP;
		}
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	count_drop(DROP_FIB);
	return VERDICT_DROP;
}
