/* Common includes, constants and tc verdicts shared by every skiff program. */
#pragma once

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* tcx verdicts: NEXT lets the next program (or the stack) decide, so untouched traffic is
 * never claimed by skiff. */
#define VERDICT_NEXT TC_ACT_UNSPEC /* TCX_NEXT */
#define VERDICT_PASS TC_ACT_OK     /* TCX_PASS */
#define VERDICT_DROP TC_ACT_SHOT   /* TCX_DROP */

/* Size of every per-service Maglev lookup table; a prime, mirrored in Go (MaglevM). */
#define MAGLEV_M 251

/* Service scopes: which frontends a program matches. */
#define SCOPE_INTERNAL 0 /* ClusterIP (and node/external IPs) seen from pods and local sockets */
#define SCOPE_EXTERNAL 1 /* NodePort/externalIPs seen on the node's devices */

/* backend.flags */
#define BACKEND_F_LOCAL 1 /* backend runs on this node: NodePort needs no SNAT */

/* conntrack directions */
#define CT_DIR_FWD 0 /* client -> frontend, value holds the chosen backend */
#define CT_DIR_REV 1 /* backend -> client, value holds the frontend to restore as source */

/* ct_val.flags */
#define CT_F_SNAT 1 /* NodePort flow to a remote backend: source NATed to the node IP */

/* ct_val.state */
#define CT_STATE_NEW 0
#define CT_STATE_ESTABLISHED 1
#define CT_STATE_CLOSING 2

#define NSEC_PER_SEC 1000000000ULL
#define CT_LIFETIME_SYN (60ULL * NSEC_PER_SEC)
#define CT_LIFETIME_TCP (6ULL * 3600 * NSEC_PER_SEC)
#define CT_LIFETIME_CLOSE (10ULL * NSEC_PER_SEC)
#define CT_LIFETIME_UDP (60ULL * NSEC_PER_SEC)

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
