/* Conntrack: forward and reverse entries in one LRU hash, with TCP-aware lifetimes. */
#pragma once

#include "parse.h"
#include "maps.h"

static __always_inline void ct_key_fwd(struct ct_key *k, const struct pkt *p)
{
	k->saddr = p->saddr;
	k->daddr = p->daddr;
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
	k->dir = CT_DIR_FWD;
	k->pad = 0;
}

/* ct_lifetime picks the next deadline from the packet's TCP flags: a SYN-only flow expires
 * quickly, an established one lasts hours, FIN/RST shortens it to a few seconds. */
static __always_inline void ct_refresh(struct ct_val *v, const struct pkt *p, __u64 now)
{
	if (p->proto != IPPROTO_TCP) {
		v->expires = now + CT_LIFETIME_UDP;
		return;
	}
	if (p->tcp_flags & (TCP_F_FIN | TCP_F_RST)) {
		v->state = CT_STATE_CLOSING;
		v->expires = now + CT_LIFETIME_CLOSE;
		return;
	}
	if (v->state == CT_STATE_CLOSING)
		return;
	if ((p->tcp_flags & TCP_F_ACK) || v->state == CT_STATE_ESTABLISHED) {
		v->state = CT_STATE_ESTABLISHED;
		v->expires = now + CT_LIFETIME_TCP;
		return;
	}
	v->expires = now + CT_LIFETIME_SYN;
}

/* ct_reverse restores the frontend as the source of a reply (egress towards the client). */
static __always_inline int ct_reverse(struct __sk_buff *skb, struct pkt *p)
{
	struct ct_key k;
	ct_key_fwd(&k, p);
	k.dir = CT_DIR_REV;
	struct ct_val *v = bpf_map_lookup_elem(&conntrack, &k);
	if (!v)
		return VERDICT_NEXT;
	ct_refresh(v, p, bpf_ktime_get_ns());
	__be32 addr = v->nat_addr;
	__be16 port = v->nat_port;
	if (rewrite_addr(skb, p, IP_SADDR_OFF, p->saddr, addr) < 0 ||
	    rewrite_port(skb, p, 0, p->sport, port) < 0) {
		count_drop(DROP_CSUM);
		return VERDICT_DROP;
	}
	return VERDICT_PASS;
}
