// SPDX-License-Identifier: GPL-2.0
/* tcx programs on a pod's host-side veth: ClusterIP DNAT for packets from the pod (ingress)
 * and reverse translation of replies towards the pod (egress). */
#include "lib/lb.h"

SEC("tc")
int pod_ingress(struct __sk_buff *skb)
{
	struct pkt p;
	int r = parse(skb, &p);
	if (r == PARSE_SKIP)
		return VERDICT_NEXT;
	if (r == PARSE_MALFORMED)
		return VERDICT_NEXT; /* not provably ours: the stack judges it */
	return lb_forward(skb, &p, SCOPE_INTERNAL, 0);
}

SEC("tc")
int pod_egress(struct __sk_buff *skb)
{
	struct pkt p;
	if (parse(skb, &p) != PARSE_OK)
		return VERDICT_NEXT;
	if (p.frag == FRAG_LATER)
		return VERDICT_NEXT;
	return ct_reverse(skb, &p);
}

char __license[] SEC("license") = "GPL";
