// Command dnsclient is skiff's DNS test image: it looks names up through the pod's
// /etc/resolv.conf (search path and ndots apply) and prints one line per answer.
//
//	/dnsclient [-type A|AAAA|SRV|PTR] [-loop DURATION] [-sleep DURATION] NAME...
//
// Without -loop it exits 0 when every name resolved, else 1; -loop repeats forever; -sleep
// keeps the process (and pod) alive afterwards so tests can exec more lookups.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	typ := flag.String("type", "A", "record type: A, AAAA, SRV (NAME is _svc._proto.name) or PTR (NAME is an IP)")
	loop := flag.Duration("loop", 0, "repeat the lookups with this interval, forever")
	sleep := flag.Duration("sleep", 0, "sleep this long after the lookups")
	flag.Parse()
	names := flag.Args()
	if len(names) == 0 {
		names = []string{"kubernetes.default"}
	}
	r := &net.Resolver{PreferGo: true}
	for {
		ok := true
		for _, n := range names {
			if err := lookup(r, strings.ToUpper(*typ), n); err != nil {
				fmt.Printf("%s %s error %v\n", n, *typ, err)
				ok = false
			}
		}
		if *loop == 0 {
			time.Sleep(*sleep)
			if !ok {
				os.Exit(1)
			}
			return
		}
		time.Sleep(*loop)
	}
}

func lookup(r *net.Resolver, typ, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch typ {
	case "A", "AAAA":
		network := "ip4"
		if typ == "AAAA" {
			network = "ip6"
		}
		ips, err := r.LookupIP(ctx, network, name)
		if err != nil {
			return err
		}
		for _, ip := range ips {
			fmt.Printf("%s %s %s\n", name, typ, ip)
		}
	case "SRV":
		_, srvs, err := r.LookupSRV(ctx, "", "", name)
		if err != nil {
			return err
		}
		for _, s := range srvs {
			fmt.Printf("%s SRV %d %d %d %s\n", name, s.Priority, s.Weight, s.Port, s.Target)
		}
	case "PTR":
		hosts, err := r.LookupAddr(ctx, name)
		if err != nil {
			return err
		}
		for _, h := range hosts {
			fmt.Printf("%s PTR %s\n", name, h)
		}
	default:
		return fmt.Errorf("unsupported type %s (A, AAAA, SRV, PTR)", typ)
	}
	return nil
}
