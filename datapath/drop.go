package datapath

// DropReason is a stable negative code from bpf/lib/drop.h; the drops map is indexed by -code.
type DropReason int

const (
	DropMalformed      DropReason = -1
	DropNoBackend      DropReason = -2
	DropFragment       DropReason = -3
	DropBackendMissing DropReason = -4
	DropMaglevMissing  DropReason = -5
	DropCTFull         DropReason = -6
	DropSNATExhausted  DropReason = -7
	DropFIB            DropReason = -8
	DropCsum           DropReason = -9
	dropMax                       = 16
)

var dropNames = map[DropReason]string{
	DropMalformed:      "malformed",
	DropNoBackend:      "no_backend",
	DropFragment:       "fragment",
	DropBackendMissing: "backend_missing",
	DropMaglevMissing:  "maglev_missing",
	DropCTFull:         "ct_full",
	DropSNATExhausted:  "snat_exhausted",
	DropFIB:            "fib",
	DropCsum:           "csum",
}

func (r DropReason) String() string {
	if n, ok := dropNames[r]; ok {
		return n
	}
	return "unknown"
}
