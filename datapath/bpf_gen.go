package datapath

// The BPF objects are generated with Debian's clang 14 and committed, so `go build` needs no
// clang. `make generate` reruns these; CI fails if the output differs from what is committed.

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -no-global-types tcPod ../bpf/tc_pod.c -- -I../bpf
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -no-global-types tcNodePort ../bpf/tc_nodeport.c -- -I../bpf
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -no-global-types sockLB ../bpf/sock_lb.c -- -I../bpf
