/* Packet parsing: Ethernet + IPv4 + TCP/UDP ports into struct pkt, by offset. */
#pragma once

#include "common.h"

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_SADDR_OFF (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DADDR_OFF (IP_OFF + offsetof(struct iphdr, daddr))

struct pkt {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags; /* TCP_F_* */
	__u8 frag;      /* FRAG_* */
	__u8 ihl;
	__u32 l4_off;
	__u32 len; /* skb->len, for byte counters */
};

#define TCP_F_FIN 0x01
#define TCP_F_SYN 0x02
#define TCP_F_RST 0x04
#define TCP_F_ACK 0x10

#define FRAG_NONE 0
#define FRAG_FIRST 1 /* MF set, offset 0: has the L4 header */
#define FRAG_LATER 2 /* offset != 0: no L4 header */

#define PARSE_OK 0
#define PARSE_SKIP 1     /* not IPv4 TCP/UDP: not ours */
#define PARSE_MALFORMED 2

/* parse fills p from the packet; only IPv4 TCP/UDP is parsed further than the IP header. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return PARSE_SKIP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_SKIP;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return PARSE_SKIP;

	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->ihl = ip->ihl;
	p->l4_off = ETH_HLEN + ip->ihl * 4;
	p->len = skb->len;
	p->tcp_flags = 0;
	p->sport = 0;
	p->dport = 0;
	p->frag = FRAG_NONE;

	__u16 frag_off = bpf_ntohs(ip->frag_off);
	if (frag_off & IP_OFFSET) {
		p->frag = FRAG_LATER;
		return PARSE_OK;
	}
	if (frag_off & IP_MF)
		p->frag = FRAG_FIRST;

	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + p->l4_off;
		if ((void *)(th + 1) > data_end)
			return PARSE_MALFORMED;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
	} else {
		struct udphdr *uh = data + p->l4_off;
		if ((void *)(uh + 1) > data_end)
			return PARSE_MALFORMED;
		p->sport = uh->source;
		p->dport = uh->dest;
	}
	return PARSE_OK;
}
