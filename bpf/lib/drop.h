/* Stable drop (and refusal) reason codes. They are negative, never renumbered, and mirrored in
 * Go (datapath/drop.go); the drops map is indexed by -code. */
#pragma once

#define DROP_MALFORMED -1       /* truncated or invalid IPv4/TCP/UDP header to a frontend */
#define DROP_NO_BACKEND -2      /* frontend has zero backends: answered with TCP RST / ICMP port unreachable */
#define DROP_FRAGMENT -3        /* first fragment of a fragmented datagram to a frontend */
#define DROP_BACKEND_MISSING -4 /* Maglev slot names a backend id not in the backends map */
#define DROP_MAGLEV_MISSING -5  /* service has backends but no Maglev table */
#define DROP_CT_FULL -6         /* conntrack or SNAT map update failed */
#define DROP_SNAT_EXHAUSTED -7  /* no free SNAT source port for a remote NodePort backend */
#define DROP_FIB -8             /* no route to redirect a NodePort/SNAT packet */
#define DROP_CSUM -9            /* a checksum or store helper failed */
#define DROP_MAX 16             /* size of the drops array */
