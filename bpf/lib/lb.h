/* Service load balancing: frontend lookup, Maglev backend selection, conntrack creation and
 * DNAT (plus SNAT for remote NodePort backends). */
#pragma once

#include "nat.h"
#include "conntrack.h"
#include "rst.h"
#include "icmp.h"

/* jhash_3words from the kernel's jhash.h. */
#define rol32(v, s) (((v) << (s)) | ((v) >> (32 - (s))))
static __always_inline __u32 hash3(__u32 a, __u32 b, __u32 c)
{
	__u32 initval = 0xdeadbeef + (3 << 2);
	a += initval;
	b += initval;
	c += initval;
	c ^= b; c -= rol32(b, 14);
	a ^= c; a -= rol32(c, 11);
	b ^= a; b -= rol32(a, 25);
	c ^= b; c -= rol32(b, 16);
	a ^= c; a -= rol32(c, 4);
	b ^= a; b -= rol32(a, 14);
	c ^= b; c -= rol32(b, 24);
	return c;
}

/* pick_backend returns the backend in slot hash % MAGLEV_M of the service's table. */
static __always_inline struct backend *pick_backend(__u32 svc_id, __u32 hash, __u32 *id, int *reason)
{
	struct maglev_val *m = bpf_map_lookup_elem(&maglev, &svc_id);
	if (!m) {
		*reason = DROP_MAGLEV_MISSING;
		return NULL;
	}
	__u32 slot = hash % MAGLEV_M;
	/* The verifier does not bound a modulo: hide it from clang and check explicitly. */
	asm volatile("" : "+r"(slot));
	if (slot >= MAGLEV_M) {
		*reason = DROP_MAGLEV_MISSING;
		return NULL;
	}
	*id = m->ids[slot];
	struct backend *b = bpf_map_lookup_elem(&backends, id);
	if (!b)
		*reason = DROP_BACKEND_MISSING;
	return b;
}

/* snat_claim finds a free source port towards the backend, preferring the client's own. */
static __always_inline int snat_claim(const struct pkt *p, __be32 baddr, __be16 bport, __be16 *port,
				      __u64 now)
{
	struct snat_key k = {
		.backend_addr = baddr,
		.node_addr = snat_ip,
		.backend_port = bport,
		.proto = p->proto,
	};
	struct snat_val v = {
		.expires = now + CT_LIFETIME_TCP,
		.client_addr = p->saddr,
		.frontend_addr = p->daddr,
		.client_port = p->sport,
		.frontend_port = p->dport,
	};
	__u32 h = hash3(p->saddr, ((__u32)p->sport << 16) | p->dport, p->daddr);
	for (int i = 0; i < 8; i++) {
		__be16 cand = i == 0 ? p->sport : bpf_htons(32768 + (h + i * 7919) % 28232);
		k.node_port = cand;
		struct snat_val *old = bpf_map_lookup_elem(&snat, &k);
		if (old && old->client_addr == p->saddr && old->client_port == p->sport) {
			old->expires = v.expires;
			*port = cand;
			return 0;
		}
		if (old)
			continue;
		if (bpf_map_update_elem(&snat, &k, &v, BPF_NOEXIST) == 0) {
			*port = cand;
			return 0;
		}
	}
	return DROP_SNAT_EXHAUSTED;
}

static __always_inline int drop(int reason)
{
	count_drop(reason);
	return VERDICT_DROP;
}

/* lb_forward translates a packet to a frontend of the given scope. Non-service traffic and
 * later fragments (which carry no ports) are left untouched; a first fragment to a frontend
 * is dropped with DROP_FRAGMENT, because its later fragments could not follow it. */
static __always_inline int lb_forward(struct __sk_buff *skb, struct pkt *p, __u8 scope, int nodeport)
{
	if (p->frag == FRAG_LATER)
		return VERDICT_NEXT;

	struct svc_key sk = {.vip = p->daddr, .port = p->dport, .proto = p->proto, .scope = scope};
	struct svc_val *svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc)
		return VERDICT_NEXT;
	if (p->frag == FRAG_FIRST)
		return drop(DROP_FRAGMENT);

	__u32 svc_id = svc->svc_id;
	count_service(svc_id, p->len);
	__u64 now = bpf_ktime_get_ns();

	struct ct_key fk;
	ct_key_fwd(&fk, p);
	struct ct_val *ct = bpf_map_lookup_elem(&conntrack, &fk);
	/* A bare SYN on a closing tuple is a new connection reusing the ports: balance it anew
	 * rather than sending it to a backend that may have gone. */
	if (ct && ct->state == CT_STATE_CLOSING && p->proto == IPPROTO_TCP &&
	    (p->tcp_flags & (TCP_F_SYN | TCP_F_ACK)) == TCP_F_SYN)
		ct = NULL;
	__be32 baddr;
	__be16 bport, sport = 0;
	__u8 flags;
	if (ct) {
		ct_refresh(ct, p, now);
		baddr = ct->nat_addr;
		bport = ct->nat_port;
		sport = ct->snat_port;
		flags = ct->flags;
	} else {
		if (svc->count == 0) {
			count_drop(DROP_NO_BACKEND);
			if (p->proto == IPPROTO_TCP && !(p->tcp_flags & TCP_F_RST))
				return reply_rst(skb, p);
			return reply_icmp_unreach(skb, p);
		}
		__u32 bid = 0;
		int reason = 0;
		__u32 h = hash3(p->saddr ^ p->daddr, ((__u32)p->sport << 16) | p->dport, p->proto);
		struct backend *b = pick_backend(svc_id, h, &bid, &reason);
		if (!b)
			return drop(reason);
		baddr = b->addr;
		bport = b->port;
		flags = 0;
		if (nodeport && !(b->flags & BACKEND_F_LOCAL)) {
			flags = CT_F_SNAT;
			int r = snat_claim(p, baddr, bport, &sport, now);
			if (r < 0)
				return drop(r);
		}
		struct ct_val nv = {
			.nat_addr = baddr,
			.nat_port = bport,
			.snat_port = sport,
			.svc_id = svc_id,
			.backend_id = bid,
			.flags = flags,
		};
		ct_refresh(&nv, p, now);
		if (bpf_map_update_elem(&conntrack, &fk, &nv, BPF_ANY) < 0)
			return drop(DROP_CT_FULL);
		if (!(flags & CT_F_SNAT)) {
			struct ct_key rk = {
				.saddr = baddr,
				.daddr = p->saddr,
				.sport = bport,
				.dport = p->sport,
				.proto = p->proto,
				.dir = CT_DIR_REV,
			};
			struct ct_val rv = {
				.nat_addr = p->daddr,
				.nat_port = p->dport,
				.svc_id = svc_id,
				.backend_id = bid,
			};
			ct_refresh(&rv, p, now);
			if (bpf_map_update_elem(&conntrack, &rk, &rv, BPF_ANY) < 0)
				return drop(DROP_CT_FULL);
		}
	}

	int r = nat_dst(skb, p, baddr, bport);
	if (r < 0)
		return drop(r);
	if (flags & CT_F_SNAT) {
		r = nat_src(skb, p, snat_ip, sport);
		if (r < 0)
			return drop(r);
		return fib_redirect(skb, p);
	}
	return VERDICT_PASS;
}

/* snat_reverse undoes the SNAT of a remote NodePort flow on the backend's reply. */
static __always_inline int snat_reverse(struct __sk_buff *skb, struct pkt *p)
{
	if (p->frag == FRAG_LATER || snat_ip == 0 || p->daddr != snat_ip)
		return VERDICT_NEXT;
	struct snat_key k = {
		.backend_addr = p->saddr,
		.node_addr = p->daddr,
		.backend_port = p->sport,
		.node_port = p->dport,
		.proto = p->proto,
	};
	struct snat_val *v = bpf_map_lookup_elem(&snat, &k);
	if (!v)
		return VERDICT_NEXT;
	__u64 now = bpf_ktime_get_ns();
	v->expires = now + (p->proto == IPPROTO_TCP ? CT_LIFETIME_TCP : CT_LIFETIME_UDP);
	__be32 caddr = v->client_addr, faddr = v->frontend_addr;
	__be16 cport = v->client_port, fport = v->frontend_port;
	int r = nat_dst(skb, p, caddr, cport);
	if (r < 0)
		return drop(r);
	r = nat_src(skb, p, faddr, fport);
	if (r < 0)
		return drop(r);
	return fib_redirect(skb, p);
}
