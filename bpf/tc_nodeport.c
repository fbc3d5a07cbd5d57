// SPDX-License-Identifier: GPL-2.0
/* tcx programs on the node's devices: NodePort/externalIPs DNAT (with SNAT for remote
 * backends) and SNAT reversal on ingress; reverse translation of local backends' replies on
 * egress. */
#include "lib/lb.h"

SEC("tc")
int nodeport_ingress(struct __sk_buff *skb)
{
	struct pkt p;
	if (parse(skb, &p) != PARSE_OK)
		return VERDICT_NEXT;
	int r = snat_reverse(skb, &p);
	if (r != VERDICT_NEXT)
		return r;
	return lb_forward(skb, &p, SCOPE_EXTERNAL, 1);
}

SEC("tc")
int nodeport_egress(struct __sk_buff *skb)
{
	struct pkt p;
	if (parse(skb, &p) != PARSE_OK)
		return VERDICT_NEXT;
	if (p.frag == FRAG_LATER)
		return VERDICT_NEXT;
	return ct_reverse(skb, &p);
}

char __license[] SEC("license") = "GPL";
