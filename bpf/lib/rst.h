/* reply_rst turns a TCP segment to a frontend without backends into a RST back to its sender,
 * so connect() fails at once with ECONNREFUSED instead of retrying SYNs. */
#pragma once

#include "csum.h"
#include "maps.h"
#include "drop.h"

struct rst_pseudo {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
	struct tcphdr th;
};

static __always_inline int reply_rst(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	struct tcphdr *th = data + ETH_HLEN + sizeof(struct iphdr);

	if (p->ihl != 5 || (void *)(th + 1) > data_end)
		return VERDICT_DROP;

	__u32 seq = bpf_ntohl(th->seq);
	__u32 ack_seq = bpf_ntohl(th->ack_seq);
	__u32 payload = bpf_ntohs(ip->tot_len) - sizeof(struct iphdr) - th->doff * 4;
	int syn = th->syn, fin = th->fin, had_ack = th->ack;

	struct rst_pseudo ps = {};
	ps.saddr = p->daddr;
	ps.daddr = p->saddr;
	ps.proto = IPPROTO_TCP;
	ps.len = bpf_htons(sizeof(struct tcphdr));
	ps.th.source = p->dport;
	ps.th.dest = p->sport;
	ps.th.doff = 5;
	ps.th.rst = 1;
	/* RFC 793: answer an ACK with seq = its ack; otherwise ack everything it sent. */
	if (had_ack) {
		ps.th.seq = bpf_htonl(ack_seq);
	} else {
		ps.th.ack = 1;
		ps.th.ack_seq = bpf_htonl(seq + payload + syn + fin);
	}
	__s64 sum = bpf_csum_diff(NULL, 0, (__be32 *)&ps, sizeof(ps), 0);
	if (sum < 0)
		return VERDICT_DROP;
	ps.th.check = csum_fold((__u32)sum);

	struct iphdr nip = {};
	nip.version = 4;
	nip.ihl = 5;
	nip.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr));
	nip.ttl = 64;
	nip.protocol = IPPROTO_TCP;
	nip.saddr = p->daddr;
	nip.daddr = p->saddr;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&nip, sizeof(nip), 0);
	if (sum < 0)
		return VERDICT_DROP;
	nip.check = csum_fold((__u32)sum);

	__u8 mac[2 * ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(mac + ETH_ALEN, eth->h_dest, ETH_ALEN);

	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr), 0) < 0)
		return VERDICT_DROP;
	/* eth dest = old source, eth source = old dest */
	if (bpf_skb_store_bytes(skb, 0, mac, sizeof(mac), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &nip, sizeof(nip), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(nip), &ps.th, sizeof(ps.th), 0) < 0)
		return VERDICT_DROP;
	/* Back out of the device it came in on. */
	return bpf_redirect(skb->ifindex, 0);
}
