package datapath

import "hash/fnv"

// maglevTable fills MaglevM slots with backend ids using Maglev's permutation (Eisenbud et al.,
// NSDI 2016): each backend gets floor or ceil of M/N slots, and adding or removing a backend
// moves few slots. names identify backends stably (address:port), so the table does not
// depend on id allocation. M = 251 keeps a table at 1 KiB, so 100k services fit in ~100 MiB
// and one service is one map update; the price is coarser balance above ~25 backends and at
// most 251 backends per service.
func maglevTable(names []string, ids []uint32) [MaglevM]uint32 {
	var table [MaglevM]uint32
	n := len(names)
	if n == 0 {
		return table
	}
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	for i, name := range names {
		h := fnv.New64a()
		h.Write([]byte(name))
		a := h.Sum64()
		h.Write([]byte{0x5a})
		b := h.Sum64()
		offset[i] = a % MaglevM
		skip[i] = b%(MaglevM-1) + 1
	}
	next := make([]uint64, n)
	var filled [MaglevM]bool
	count := 0
	for {
		for i := 0; i < n; i++ {
			c := (offset[i] + next[i]*skip[i]) % MaglevM
			for filled[c] {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % MaglevM
			}
			filled[c] = true
			table[c] = ids[i]
			next[i]++
			count++
			if count == MaglevM {
				return table
			}
		}
	}
}
