package datapath

// Go mirrors of the C structs in bpf/lib/maps.h. Field order, sizes and padding match the C
// layout exactly; TestStructLayoutMatchesBTF checks them against the compiled object's BTF.
// Addresses and ports are kept in network byte order, as the kernel sees them.

// MaglevM is the size of every per-service Maglev table (MAGLEV_M in bpf/lib/common.h).
const MaglevM = 251

// Scopes (SCOPE_* in common.h).
const (
	scopeInternal uint8 = 0 // ClusterIP etc. from pods and local sockets
	scopeExternal uint8 = 1 // NodePort/externalIPs on the node's devices
)

const backendFlagLocal uint8 = 1 // BACKEND_F_LOCAL

const (
	ctDirFwd   uint8 = 0
	ctDirRev   uint8 = 1
	ctFlagSNAT uint8 = 1
)

type svcKey struct {
	VIP   [4]byte
	Port  uint16 // network order
	Proto uint8
	Scope uint8
}

type svcVal struct {
	SvcID uint32
	Count uint16
	Flags uint16
}

type backendVal struct {
	Addr  [4]byte
	Port  uint16 // network order
	Proto uint8
	Flags uint8
}

type maglevVal struct {
	IDs [MaglevM]uint32
}

type ctKey struct {
	Saddr [4]byte
	Daddr [4]byte
	Sport uint16
	Dport uint16
	Proto uint8
	Dir   uint8
	Pad   uint16
}

type ctVal struct {
	Expires   uint64 // CLOCK_MONOTONIC ns
	NatAddr   [4]byte
	NatPort   uint16
	SnatPort  uint16
	SvcID     uint32
	BackendID uint32
	State     uint8
	Flags     uint8
	Pad       uint16
	Pad2      uint32
}

type snatKey struct {
	BackendAddr [4]byte
	NodeAddr    [4]byte
	BackendPort uint16
	NodePort    uint16
	Proto       uint8
	Pad         [3]uint8
}

type snatVal struct {
	Expires      uint64
	ClientAddr   [4]byte
	FrontendAddr [4]byte
	ClientPort   uint16
	FrontendPort uint16
	Pad          uint32
}

type sockRevKey struct {
	Cookie uint64
	Addr   [4]byte
	Port   uint16
	Pad    uint16
}

type sockRevVal struct {
	VIP  [4]byte
	Port uint16
	Pad  uint16
}

type counterVal struct {
	Packets uint64
	Bytes   uint64
}

// htons and ntohs convert ports between host and network order (amd64/arm64: little-endian).
func htons(p uint16) uint16 { return p<<8 | p>>8 }
func ntohs(p uint16) uint16 { return p<<8 | p>>8 }
