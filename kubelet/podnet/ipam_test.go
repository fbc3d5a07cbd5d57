package podnet

import (
	"errors"
	"fmt"
	"testing"
)

func TestIPAMAllocateReleasePersist(t *testing.T) {
	dir := t.TempDir()
	a, err := NewIPAM(dir, "10.244.3.0/29")
	if err != nil {
		t.Fatal(err)
	}
	if g := a.Gateway().String(); g != "10.244.3.1" {
		t.Fatalf("gateway %s", g)
	}
	// /29: .2 .. .6 usable.
	var got []string
	for i := 0; i < 5; i++ {
		ip, err := a.Allocate(fmt.Sprintf("uid%d ns/p%d", i, i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
	}
	want := []string{"10.244.3.2", "10.244.3.3", "10.244.3.4", "10.244.3.5", "10.244.3.6"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("allocated %v, want %v", got, want)
	}
	if _, err := a.Allocate("uid9 ns/p9"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want exhausted, got %v", err)
	}
	// Same owner gets the same address.
	if ip, _ := a.Allocate("uid2 ns/p2"); ip.String() != "10.244.3.4" {
		t.Fatalf("re-allocate gave %s", ip)
	}
	// A new IPAM over the same dir (agent restart) never hands out a used address.
	b, err := NewIPAM(dir, "10.244.3.0/29")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allocate("uid7 ns/p7"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("restarted IPAM reused an address: %v", err)
	}
	if err := b.Release("uid1 ns/p1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Release("nobody"); err != nil {
		t.Fatal(err)
	}
	ip, err := b.Allocate("uid8 ns/p8")
	if err != nil || ip.String() != "10.244.3.3" {
		t.Fatalf("after release: %v %v", ip, err)
	}
	if ip, ok := b.Lookup("uid8 ns/p8"); !ok || ip.String() != "10.244.3.3" {
		t.Fatalf("lookup %v %v", ip, ok)
	}
}

func TestIPAMRoundRobin(t *testing.T) {
	a, _ := NewIPAM(t.TempDir(), "10.1.0.0/24")
	x, _ := a.Allocate("a")
	a.Release("a")
	y, _ := a.Allocate("b")
	if x == y {
		t.Fatalf("freed address %s reused at once", x)
	}
}

func TestIPAMBadCIDR(t *testing.T) {
	for _, c := range []string{"", "10.0.0.0", "10.0.0.0/31", "fd00::/64", "nonsense/8"} {
		if _, err := NewIPAM(t.TempDir(), c); err == nil {
			t.Errorf("%q accepted", c)
		}
	}
}

func TestHostVethName(t *testing.T) {
	n := HostVethName("default", "web-1")
	if len(n) != 13 || n[:2] != "sk" || n != HostVethName("default", "web-1") || n == HostVethName("default", "web-2") {
		t.Fatalf("veth name %q", n)
	}
}
