package datapath

import (
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestStructLayoutMatchesBTF checks every Go mirror against the C struct in each object's BTF:
// same size, same field offsets and sizes, in order.
func TestStructLayoutMatchesBTF(t *testing.T) {
	mirrors := map[string]any{
		"svc_key": svcKey{}, "svc_val": svcVal{}, "backend": backendVal{}, "maglev_val": maglevVal{},
		"ct_key": ctKey{}, "ct_val": ctVal{}, "snat_key": snatKey{}, "snat_val": snatVal{},
		"sock_rev_key": sockRevKey{}, "sock_rev_val": sockRevVal{}, "counter": counterVal{},
	}
	all, err := specs()
	if err != nil {
		t.Fatal(err)
	}
	for i, spec := range all {
		for cname, goVal := range mirrors {
			var st *btf.Struct
			if err := spec.Types.TypeByName(cname, &st); err != nil {
				t.Fatalf("object %d: struct %s not in BTF: %v", i, cname, err)
			}
			gt := reflect.TypeOf(goVal)
			if uintptr(st.Size) != gt.Size() {
				t.Errorf("struct %s: C size %d, Go %s size %d", cname, st.Size, gt.Name(), gt.Size())
				continue
			}
			if len(st.Members) != gt.NumField() {
				t.Errorf("struct %s: C has %d members, Go %d fields", cname, len(st.Members), gt.NumField())
				continue
			}
			for j, m := range st.Members {
				f := gt.Field(j)
				msize, err := btf.Sizeof(m.Type)
				if err != nil {
					t.Fatal(err)
				}
				if uintptr(m.Offset.Bytes()) != f.Offset || uintptr(msize) != f.Type.Size() {
					t.Errorf("struct %s.%s: C offset %d size %d, Go %s offset %d size %d",
						cname, m.Name, m.Offset.Bytes(), msize, f.Name, f.Offset, f.Type.Size())
				}
			}
		}
	}
}

func TestMaglevTableBalancedAndStable(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	ids := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tab := maglevTable(names, ids)
	count := map[uint32]int{}
	for _, id := range tab {
		count[id]++
	}
	for _, id := range ids {
		if c := count[id]; c < MaglevM/len(ids) || c > MaglevM/len(ids)+1 {
			t.Errorf("backend %d has %d slots, want %d or %d", id, c, MaglevM/len(ids), MaglevM/len(ids)+1)
		}
	}
	// Removing one backend moves few of the other backends' slots.
	tab2 := maglevTable(names[:9], ids[:9])
	moved := 0
	for i := range tab {
		if tab[i] != 10 && tab[i] != tab2[i] {
			moved++
		}
	}
	if moved > MaglevM/5 {
		t.Errorf("%d of %d slots of remaining backends moved", moved, MaglevM)
	}
}
