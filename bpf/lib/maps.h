/* Every map skiff shares between its programs and the agent. Go mirrors of the structs live in
 * datapath/types.go and are checked against this object's BTF. All maps are pinned by name
 * under the agent's pin dir (the loader sets pinning), so every program object shares them and
 * they outlive the agent. max_entries here are defaults; the loader overrides them from Config. */
#pragma once

#include "common.h"
#include "drop.h"

struct svc_key {
	__be32 vip;   /* frontend address: ClusterIP, node IP or external IP */
	__be16 port;  /* frontend port */
	__u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;   /* SCOPE_INTERNAL or SCOPE_EXTERNAL */
};

struct svc_val {
	__u32 svc_id;  /* key of the maglev and counters maps */
	__u16 count;   /* number of backends; 0 = refuse */
	__u16 flags;
};

struct backend {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 flags; /* BACKEND_F_* */
};

struct maglev_val {
	__u32 ids[MAGLEV_M]; /* backend ids, filled by Go with the Maglev permutation */
};

struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* CT_DIR_* */
	__u16 pad;
};

struct ct_val {
	__u64 expires;    /* bpf_ktime_get_ns() deadline, CLOCK_MONOTONIC */
	__be32 nat_addr;  /* FWD: backend address; REV: frontend address */
	__be16 nat_port;  /* FWD: backend port; REV: frontend port */
	__be16 snat_port; /* FWD with CT_F_SNAT: source port used towards the backend */
	__u32 svc_id;
	__u32 backend_id;
	__u8 state; /* CT_STATE_* */
	__u8 flags; /* CT_F_* */
	__u16 pad;
	__u32 pad2;
};

struct snat_key {
	__be32 backend_addr;
	__be32 node_addr;
	__be16 backend_port;
	__be16 node_port; /* the SNAT source port */
	__u8 proto;
	__u8 pad[3];
};

struct snat_val {
	__u64 expires;
	__be32 client_addr;
	__be32 frontend_addr;
	__be16 client_port;
	__be16 frontend_port;
	__u32 pad;
};

struct sock_rev_key {
	__u64 cookie; /* socket cookie */
	__be32 addr;  /* backend address the socket was connected to */
	__be16 port;
	__u16 pad;
};

struct sock_rev_val {
	__be32 vip;
	__be16 port;
	__u16 pad;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/* services: frontend {vip, port, proto, scope} -> service id and backend count. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct svc_key);
	__type(value, struct svc_val);
} services SEC(".maps");

/* backends: backend id -> address, port, protocol and locality. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

/* maglev: service id -> Maglev lookup table of MAGLEV_M backend ids; one update replaces a
 * service's whole backend set atomically. Not preallocated: memory follows the services. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct maglev_val);
} maglev SEC(".maps");

/* conntrack: forward (client->frontend) and reverse (backend->client) entries, so established
 * flows keep their backend and replies get their frontend back; the agent deletes expired ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_val);
} conntrack SEC(".maps");

/* snat: reply tuple of a NodePort flow to a remote backend -> the client and frontend to restore. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct snat_key);
	__type(value, struct snat_val);
} snat SEC(".maps");

/* sock_rev: {socket cookie, backend} -> frontend, for recvmsg4/getpeername4 after socket LB. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sock_rev_key);
	__type(value, struct sock_rev_val);
} sock_rev SEC(".maps");

/* counters: service id -> packets and bytes, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

/* drops: -reason code -> packets, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* snat_ip: node address used as the source towards remote NodePort backends (set by the loader). */
volatile const __be32 snat_ip = 0;

static __always_inline void count_drop(int reason)
{
	__u32 idx = -reason;
	__u64 *v = bpf_map_lookup_elem(&drops, &idx);
	if (v)
		*v += 1;
}

static __always_inline void count_service(__u32 svc_id, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(&counters, &svc_id);
	if (c) {
		c->packets += 1;
		c->bytes += bytes;
		return;
	}
	struct counter init = {.packets = 1, .bytes = bytes};
	bpf_map_update_elem(&counters, &svc_id, &init, BPF_NOEXIST);
}
