package bench

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -run %s -update writes it): %v", t.Name(), err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the generator's output (go test -update after checking the diff)\n got:\n%s", path, got)
	}
}

// The hashes kube-proxy's own unit tests expect for ns1/svc1 port p80 and endpoint 10.180.0.1:80.
func TestChainNamesMatchKubeProxy(t *testing.T) {
	p := svcPort{Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: "tcp"}
	if got, want := svcChainName(p), "KUBE-SVC-XPGD46QRK7WJZT7O"; got != want {
		t.Errorf("svc chain %s, want %s", got, want)
	}
	if got, want := sepChainName(p, "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"; got != want {
		t.Errorf("sep chain %s, want %s", got, want)
	}
	if got, want := nftServiceChain(p), "service-ULMVA6XW-ns1/svc1/tcp/p80"; got != want {
		t.Errorf("nft service chain %s, want %s", got, want)
	}
	if got, want := nftEndpointChain(p, "10.180.0.1:80"), "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"; got != want {
		t.Errorf("nft endpoint chain %s, want %s", got, want)
	}
}

func TestIptablesRestoreGolden(t *testing.T) {
	set, err := NewServiceSet(3, 3)
	if err != nil {
		t.Fatal(err)
	}
	got := IptablesRestore(set.Services, set.Slices, ClusterCIDR, []string{"KUBE-SEP-STALESTALESTALE1"})
	golden(t, "iptables-3x3.txt", got)
	golden(t, "iptables-jumps.txt", IptablesJumps())
}

func TestIptablesRestoreShape(t *testing.T) {
	set, _ := NewServiceSet(200, 10) // 2000 endpoints: kube-proxy's large-cluster mode
	out := string(IptablesRestore(set.Services, set.Slices, ClusterCIDR, nil))
	lines := strings.Split(out, "\n")
	var svcJumps, svcChains, seps, dnats int
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "-A KUBE-SERVICES ") && strings.Contains(l, "-j KUBE-SVC-"):
			svcJumps++
		case strings.HasPrefix(l, ":KUBE-SVC-"):
			svcChains++
		case strings.HasPrefix(l, ":KUBE-SEP-"):
			seps++
		case strings.Contains(l, "-j DNAT --to-destination"):
			dnats++
		}
	}
	// 200 TCP ports plus the UDP port of each of the two measured services.
	if svcJumps != 202 || svcChains != 202 || seps != 2020 || dnats != 2020 {
		t.Errorf("jumps %d, svc chains %d, sep chains %d, dnats %d; want 202, 202, 2020, 2020", svcJumps, svcChains, seps, dnats)
	}
	// The nodeports jump is the last rule of KUBE-SERVICES.
	var last string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A KUBE-SERVICES ") {
			last = l
		}
	}
	if !strings.Contains(last, "-j KUBE-NODEPORTS") {
		t.Errorf("last KUBE-SERVICES rule %q, want the KUBE-NODEPORTS jump", last)
	}
	// Probabilities 1/10, 1/9, ..., 1/2, then an unconditional jump, in the first service's chain.
	svc := svcChainName(svcPorts(set.Services[:1], set.Slices[:1])[0])
	var probs []string
	re := regexp.MustCompile(`--probability (\S+)`)
	for _, l := range lines {
		if strings.HasPrefix(l, "-A "+svc+" ") && strings.Contains(l, "KUBE-SEP-") {
			m := re.FindStringSubmatch(l)
			if m == nil {
				probs = append(probs, "always")
			} else {
				probs = append(probs, m[1])
			}
		}
	}
	want := "0.1000000000 0.1111111111 0.1250000000 0.1428571429 0.1666666667 0.2000000000 0.2500000000 0.3333333333 0.5000000000 always"
	if strings.Join(probs, " ") != want {
		t.Errorf("probabilities %v, want %s", probs, want)
	}
	if strings.Contains(out, "-A KUBE-SEP-") && strings.Contains(out, "--comment bench/") {
		t.Errorf("large-cluster mode (> 1000 endpoints) must drop the per-endpoint comments")
	}
}

func TestNftGolden(t *testing.T) {
	set, _ := NewServiceSet(3, 3)
	golden(t, "nft-3x3.txt", NftFull(set.Services, set.Slices, ClusterCIDR))
	i := set.UpdateTarget()
	before, beforeSlice := set.Services[i], set.Slices[i]
	svc, slice := set.Updated(i, true)
	set.Replace(i, svc, slice)
	golden(t, "nft-3x3-update.txt", NftUpdate(set.Services, set.Slices, svc, before, beforeSlice, slice, ClusterCIDR))
}

func TestNftShape(t *testing.T) {
	set, _ := NewServiceSet(100, 10)
	out := string(NftFull(set.Services, set.Slices, ClusterCIDR))
	if n := strings.Count(out, "add element ip kube-proxy service-ips "); n != 102 {
		t.Errorf("%d service-ips elements, want 102", n)
	}
	if n := strings.Count(out, "numgen random mod 10 vmap"); n != 102 {
		t.Errorf("%d numgen rules, want 102", n)
	}
	if n := strings.Count(out, " dnat to "); n != 1020 {
		t.Errorf("%d dnat rules, want 1020", n)
	}
	for _, want := range []string{
		"add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
		"add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
		"add rule ip kube-proxy masquerading masquerade fully-random",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
}

// kube-proxy's partial sync (MinimizeIPTablesRestore): every KUBE-SERVICES jump, but only the
// changed service's own chains, and stale chains deleted only outside large-cluster mode.
func TestIptablesPartialRestore(t *testing.T) {
	set, _ := NewServiceSet(3, 3)
	i := set.UpdateTarget()
	name := Namespace + "/" + set.Services[i].Name
	got := IptablesPartialRestore(set.Services, set.Slices, []string{name}, ClusterCIDR, []string{"KUBE-SEP-STALESTALESTALE1"})
	golden(t, "iptables-3x3-partial.txt", got)

	set, _ = NewServiceSet(200, 10) // large-cluster mode
	i = set.UpdateTarget()
	name = Namespace + "/" + set.Services[i].Name
	out := string(IptablesPartialRestore(set.Services, set.Slices, []string{name}, ClusterCIDR, []string{"KUBE-SEP-STALESTALESTALE1"}))
	full := string(IptablesRestore(set.Services, set.Slices, ClusterCIDR, nil))
	jumps := func(s string) int { return strings.Count(s, "-A KUBE-SERVICES ") }
	if jumps(out) != jumps(full) {
		t.Errorf("partial restore has %d KUBE-SERVICES rules, the full one %d: a partial sync rewrites KUBE-SERVICES whole", jumps(out), jumps(full))
	}
	svc := svcChainName(svcPorts(set.Services[i:i+1], set.Slices[i:i+1])[0])
	if n := strings.Count(out, ":KUBE-SVC-"); n != 1 || !strings.Contains(out, ":"+svc+" ") {
		t.Errorf("partial restore declares %d KUBE-SVC chains, want only the changed service's %s", n, svc)
	}
	if n := strings.Count(out, ":KUBE-SEP-"); n != 10 {
		t.Errorf("partial restore declares %d KUBE-SEP chains, want the changed service's 10", n)
	}
	if strings.Contains(out, "-X ") {
		t.Errorf("large-cluster mode leaves stale chains to the periodic cleanup, but the partial restore deletes them")
	}
	if !strings.HasSuffix(out, "COMMIT\n") || strings.Count(out, "COMMIT\n") != 2 {
		t.Errorf("want a filter and a nat transaction")
	}
}
