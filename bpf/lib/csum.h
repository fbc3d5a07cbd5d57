/* Checksum helpers: incremental L3/L4 updates for address and port rewrites. An incremental
 * update keeps a wrong checksum wrong, so the receiver still drops a corrupted packet. */
#pragma once

#include "parse.h"

static __always_inline __u32 l4_csum_off(const struct pkt *p)
{
	return p->l4_off + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
						    : offsetof(struct udphdr, check));
}

/* UDP checksum 0 means "none": BPF_F_MARK_MANGLED_0 leaves it 0 and never produces 0. */
static __always_inline __u64 l4_csum_flags(const struct pkt *p)
{
	return p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* rewrite_addr replaces the IPv4 address at addr_off (saddr or daddr), fixing both checksums. */
static __always_inline int rewrite_addr(struct __sk_buff *skb, const struct pkt *p, __u32 addr_off,
					__be32 from, __be32 to)
{
	if (from == to)
		return 0;
	if (p->frag != FRAG_LATER &&
	    bpf_l4_csum_replace(skb, l4_csum_off(p), from, to,
				BPF_F_PSEUDO_HDR | l4_csum_flags(p) | sizeof(to)) < 0)
		return -1;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, from, to, sizeof(to)) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, addr_off, &to, sizeof(to), 0) < 0)
		return -1;
	return 0;
}

/* rewrite_port replaces the L4 port at offset port_off inside the L4 header. */
static __always_inline int rewrite_port(struct __sk_buff *skb, const struct pkt *p, __u32 port_off,
					__be16 from, __be16 to)
{
	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, l4_csum_off(p), from, to, l4_csum_flags(p) | sizeof(to)) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, p->l4_off + port_off, &to, sizeof(to), 0) < 0)
		return -1;
	return 0;
}

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}
