/* reply_icmp_unreach turns a UDP datagram to a frontend without backends into an ICMP port
 * unreachable back to its sender (as kube-proxy's REJECT does), so a connected UDP socket
 * gets ECONNREFUSED instead of waiting for an answer that never comes. */
#pragma once

#include "csum.h"
#include "maps.h"
#include "drop.h"

#define ICMP_QUOTE_LEN (sizeof(struct iphdr) + 8) /* original IP header + 8 bytes of UDP */
#define ICMP_REPLY_LEN (ETH_HLEN + sizeof(struct iphdr) + sizeof(struct icmp_unreach_hdr) + ICMP_QUOTE_LEN)

/* linux/icmp.h drags in libc headers; this is the part needed here. */
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
struct icmp_unreach_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 unused;
};

struct icmp_body {
	struct icmp_unreach_hdr icmp;
	__u8 quote[ICMP_QUOTE_LEN];
};

static __always_inline int reply_icmp_unreach(struct __sk_buff *skb, struct pkt *p)
{
	if (p->ihl != 5)
		return VERDICT_DROP;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN + ICMP_QUOTE_LEN > data_end)
		return VERDICT_DROP;

	struct icmp_body body = {};
	body.icmp.type = ICMP_DEST_UNREACH;
	body.icmp.code = ICMP_PORT_UNREACH;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, body.quote, ICMP_QUOTE_LEN) < 0)
		return VERDICT_DROP;
	__s64 sum = bpf_csum_diff(NULL, 0, (__be32 *)&body, sizeof(body), 0);
	if (sum < 0)
		return VERDICT_DROP;
	body.icmp.checksum = csum_fold((__u32)sum);

	struct iphdr nip = {};
	nip.version = 4;
	nip.ihl = 5;
	nip.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(body));
	nip.ttl = 64;
	nip.protocol = IPPROTO_ICMP;
	nip.saddr = p->daddr;
	nip.daddr = p->saddr;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&nip, sizeof(nip), 0);
	if (sum < 0)
		return VERDICT_DROP;
	nip.check = csum_fold((__u32)sum);

	struct ethhdr *eth = data;
	__u8 mac[2 * ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(mac + ETH_ALEN, eth->h_dest, ETH_ALEN);

	/* Resize to exactly the reply: grow if the datagram was shorter, else trim. */
	if (bpf_skb_change_tail(skb, ICMP_REPLY_LEN, 0) < 0)
		return VERDICT_DROP;
	if (bpf_skb_store_bytes(skb, 0, mac, sizeof(mac), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &nip, sizeof(nip), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(nip), &body, sizeof(body), 0) < 0)
		return VERDICT_DROP;
	return bpf_redirect(skb->ifindex, 0);
}
