// Package datapath is the Go side of skiff's eBPF service load balancer: it loads the programs
// in bpf/ (compiled by bpf2go and committed), pins and adopts their maps and links under
// Config.PinDir, translates Services and EndpointSlices into map entries, and follows the API.
//
// Programs (bpf/*.c, one file per attach point):
//   - tc_pod.c: tcx ingress on a pod's host-side veth DNATs ClusterIP traffic from the pod;
//     tcx egress on the same veth restores the frontend as source on replies.
//   - tc_nodeport.c: tcx ingress on Config.Devices DNATs NodePort/externalIPs traffic, SNATs
//     to NodeIPs[0] for remote backends (redirected with a FIB lookup, since the stack would
//     drop a packet with a local source as martian) and reverses that SNAT on replies; tcx
//     egress reverse-translates replies of local backends.
//   - sock_lb.c: cgroup connect4/sendmsg4 pick the backend before a packet exists;
//     recvmsg4/getpeername4 show the frontend again.
//
// Choices worth knowing:
//   - Maglev with M = 251 slots per service, one hash map value per service: replacing a
//     service's backend set is one atomic map update, tables are 1 KiB (100k services ~100 MiB,
//     not preallocated), at the price of coarse balance above ~25 backends and at most 251
//     backends per service.
//   - Conntrack stores the backend's address, not its id, so established flows keep their
//     backend whatever happens to the backends map. A bare SYN on a closing tuple is balanced
//     anew. Expired entries are deleted by a GC goroutine every 30 s (the maps are LRU too).
//   - Fragments: a first fragment to a frontend is dropped and counted (DropFragment), since
//     its later fragments carry no ports and could not follow it; later fragments pass
//     untranslated (to a ClusterIP they meet the unreachable route).
//   - A frontend with no backends answers TCP with RST and UDP with ICMP port unreachable
//     (counted as DropNoBackend); socket LB fails connect() with ECONNREFUSED.
//   - Restart: Close leaves maps and links pinned, so traffic flows without the agent; New
//     adopts the maps, reuses the ids it finds, swaps its programs into the pinned links with
//     an atomic link update, and the first Sync deletes whatever no Service claims.
//
// Not handled: IPv6, SCTP, hairpin (a pod reaching itself through its Service), ICMP errors
// about translated flows (not reverse-translated), sessionAffinity.
package datapath
