package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Load kinds.
const (
	LoadVerify = "verify" // a few new connections and UDP exchanges, recording who answered
	LoadRR     = "rr"     // request/response on one persistent TCP connection
	LoadCRR    = "crr"    // connect, request, response, close, per request
	LoadUDP    = "udp"    // UDP request/response on one connected socket
	LoadStream = "stream" // single-stream TCP throughput
)

// LoadSpec is what the parent asks a load-generator child to do.
type LoadSpec struct {
	Kind     string        `json:"kind"`
	TCP      []string      `json:"tcp"` // "ip:port"; rr and stream use the first, crr and verify rotate
	UDP      []string      `json:"udp"`
	Duration time.Duration `json:"duration"`
	Count    int           `json:"count"` // verify: exchanges per protocol
}

// LoadResult is what the child reports back.
type LoadResult struct {
	Kind     string        `json:"kind"`
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"`
	Elapsed  time.Duration `json:"elapsed"`
	Bytes    int64         `json:"bytes"`
	P50      float64       `json:"p50_us"`
	P90      float64       `json:"p90_us"`
	P99      float64       `json:"p99_us"`
	Mean     float64       `json:"mean_us"`
	// CPU used over the measured window: by this process (rusage, including the softirq work
	// the kernel does on its behalf) and by the whole machine (/proc/stat busy time).
	ProcCPU time.Duration `json:"proc_cpu"`
	SysCPU  time.Duration `json:"sys_cpu"`
	Seen    []Identity    `json:"seen,omitempty"`
	Err     string        `json:"error,omitempty"`
}

// LoadgenEnv marks a process as a load-generator child.
const LoadgenEnv = "SKIFF_BENCH_LOADGEN"

// LoadgenMain is the child's main: one JSON LoadSpec on in, one JSON LoadResult on out.
// It runs in the client netns (inherited at fork) and in the bench cgroup, so for ebpf-sock
// every socket it makes passes the connect hooks.
func LoadgenMain(in io.Reader, out io.Writer) int {
	var spec LoadSpec
	res := LoadResult{}
	if err := json.NewDecoder(in).Decode(&spec); err != nil {
		res.Err = fmt.Sprintf("decode load spec: %v", err)
	} else {
		res = RunLoad(spec)
	}
	json.NewEncoder(out).Encode(res)
	if res.Err != "" {
		return 1
	}
	return 0
}

// RunLoad runs one load in the calling process.
func RunLoad(spec LoadSpec) LoadResult {
	res := LoadResult{Kind: spec.Kind}
	if len(spec.TCP) == 0 && spec.Kind != LoadUDP {
		res.Err = "load spec has no TCP targets"
		return res
	}
	hist := hdrhistogram.New(1, int64(10*time.Second/time.Microsecond*1000), 3) // ns
	cpu0, sys0 := procCPU(), sysBusy()
	start := time.Now()
	var err error
	switch spec.Kind {
	case LoadVerify:
		res.Seen, err = verify(spec)
	case LoadRR:
		err = loadRR(spec, hist, &res)
	case LoadCRR:
		err = loadCRR(spec, hist, &res)
	case LoadUDP:
		err = loadUDP(spec, hist, &res)
	case LoadStream:
		err = loadStream(spec, &res)
	default:
		err = fmt.Errorf("unknown load kind %q (want verify, rr, crr, udp or stream)", spec.Kind)
	}
	res.Elapsed = time.Since(start)
	res.ProcCPU = procCPU() - cpu0
	res.SysCPU = sysBusy() - sys0
	if err != nil {
		res.Err = err.Error()
	}
	if hist.TotalCount() > 0 {
		res.P50 = float64(hist.ValueAtQuantile(50)) / 1e3
		res.P90 = float64(hist.ValueAtQuantile(90)) / 1e3
		res.P99 = float64(hist.ValueAtQuantile(99)) / 1e3
		res.Mean = hist.Mean() / 1e3
	}
	return res
}

func request(kind byte) []byte {
	b := make([]byte, msgSize)
	b[0] = kind
	return b
}

func exchange(c net.Conn, req, reply []byte) (Identity, error) {
	if _, err := c.Write(req); err != nil {
		return Identity{}, err
	}
	if _, err := io.ReadFull(c, reply); err != nil {
		return Identity{}, err
	}
	return decodeReply(reply)
}

func verify(spec LoadSpec) ([]Identity, error) {
	var seen []Identity
	req, reply := request(kindRR), make([]byte, msgSize)
	for i := 0; i < spec.Count; i++ {
		c, err := net.DialTimeout("tcp4", spec.TCP[i%len(spec.TCP)], 2*time.Second)
		if err != nil {
			return seen, fmt.Errorf("tcp connect %s: %w", spec.TCP[i%len(spec.TCP)], err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		id, err := exchange(c, req, reply)
		c.Close()
		if err != nil {
			return seen, fmt.Errorf("tcp exchange with %s: %w", spec.TCP[i%len(spec.TCP)], err)
		}
		seen = append(seen, id)
	}
	for i := 0; i < spec.Count && len(spec.UDP) > 0; i++ {
		addr := spec.UDP[i%len(spec.UDP)]
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return seen, fmt.Errorf("udp %s: %w", addr, err)
		}
		var id Identity
		for try := 0; try < 5; try++ { // UDP: the first datagram may race the neighbour lookup
			c.SetDeadline(time.Now().Add(500 * time.Millisecond))
			if id, err = exchange(c, req, reply); err == nil {
				break
			}
		}
		c.Close()
		if err != nil {
			return seen, fmt.Errorf("udp exchange with %s: %w", addr, err)
		}
		id.Port = -id.Port // negative: answered over UDP
		seen = append(seen, id)
	}
	return seen, nil
}

func loadStream(spec LoadSpec, res *LoadResult) error {
	c, err := net.DialTimeout("tcp4", spec.TCP[0], 2*time.Second)
	if err != nil {
		return fmt.Errorf("connect %s: %w", spec.TCP[0], err)
	}
	defer c.Close()
	buf := make([]byte, 128<<10)
	buf[0] = kindStream
	end := time.Now().Add(spec.Duration)
	for time.Now().Before(end) {
		// A write may wait for the receiver on a busy machine; only one stuck for 10 s is broken.
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Write(buf)
		res.Bytes += int64(n)
		if err != nil {
			return fmt.Errorf("stream to %s after %d bytes: %w", spec.TCP[0], res.Bytes, err)
		}
		buf[0] = 0
	}
	return nil
}

func procCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sysBusy is the machine's busy time summed over CPUs from /proc/stat (user, nice, system,
// irq, softirq, steal), so it includes the kernel's packet work wherever it ran.
func sysBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
