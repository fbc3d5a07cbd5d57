// SPDX-License-Identifier: GPL-2.0
/* cgroup sock_addr programs: socket-level load balancing for processes on the node. connect4
 * and sendmsg4 rewrite a frontend to a backend before any packet exists; recvmsg4 and
 * getpeername4 show the frontend again, so applications never see the backend address. */
#include "lib/lb.h"

#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif

#define SOCK_ALLOW 1
#define SOCK_REJECT 0

static __always_inline int sock_translate(struct bpf_sock_addr *ctx, int connect)
{
	__u8 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return SOCK_ALLOW;
	struct svc_key sk = {
		.vip = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
		.proto = proto,
		.scope = SCOPE_INTERNAL,
	};
	struct svc_val *svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc)
		return SOCK_ALLOW;
	__u32 svc_id = svc->svc_id;
	count_service(svc_id, 0);
	if (svc->count == 0) {
		count_drop(DROP_NO_BACKEND);
		if (connect)
			bpf_set_retval(-ECONNREFUSED);
		return SOCK_REJECT;
	}
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u32 bid = 0;
	int reason = 0;
	/* Hash on the socket cookie: one socket keeps one backend, sockets spread evenly. */
	struct backend *b = pick_backend(svc_id, hash3((__u32)cookie, (__u32)(cookie >> 32), sk.vip ^ sk.port),
					 &bid, &reason);
	if (!b) {
		count_drop(reason);
		return SOCK_REJECT;
	}
	struct sock_rev_key rk = {.cookie = cookie, .addr = b->addr, .port = b->port};
	struct sock_rev_val rv = {.vip = sk.vip, .port = sk.port};
	if (bpf_map_update_elem(&sock_rev, &rk, &rv, BPF_ANY) < 0) {
		count_drop(DROP_CT_FULL);
		return SOCK_REJECT;
	}
	ctx->user_ip4 = b->addr;
	ctx->user_port = (__u32)b->port;
	return SOCK_ALLOW;
}

/* sock_restore shows the frontend instead of the backend a socket was balanced to. */
static __always_inline int sock_restore(struct bpf_sock_addr *ctx)
{
	struct sock_rev_key rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	struct sock_rev_val *rv = bpf_map_lookup_elem(&sock_rev, &rk);
	if (!rv)
		return SOCK_ALLOW;
	ctx->user_ip4 = rv->vip;
	ctx->user_port = (__u32)rv->port;
	return SOCK_ALLOW;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock_translate(ctx, 1);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_translate(ctx, 0);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_restore(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_restore(ctx);
}

char __license[] SEC("license") = "GPL";
