package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestTrackerThresholds(t *testing.T) {
	tr := NewTracker(&corev1.Probe{SuccessThreshold: 2, FailureThreshold: 3}, Failure)
	steps := []struct {
		in      Result
		want    Result
		changed bool
	}{
		{Success, Failure, false}, // 1 of 2 successes
		{Success, Success, true},  // 2 of 2
		{Failure, Success, false},
		{Failure, Success, false},
		{Success, Success, false}, // resets the failure count
		{Failure, Success, false},
		{Failure, Success, false},
		{Failure, Failure, true}, // 3 in a row
		{Success, Failure, false},
	}
	for i, s := range steps {
		got, changed := tr.Observe(s.in)
		if got != s.want || changed != s.changed {
			t.Fatalf("step %d: observe %s -> %s changed=%v, want %s %v", i, s.in, got, changed, s.want, s.changed)
		}
	}
	d := NewTracker(&corev1.Probe{}, Unknown)
	if d.SuccessThreshold != 1 || d.FailureThreshold != 3 {
		t.Fatalf("defaults %d %d", d.SuccessThreshold, d.FailureThreshold)
	}
}

type rec struct {
	mu  sync.Mutex
	evs []string
}

func (r *rec) report(k Kind, res Result, _ string) {
	r.mu.Lock()
	r.evs = append(r.evs, string(k)+":"+res.String())
	r.mu.Unlock()
}

func (r *rec) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.evs {
		if e == s {
			return true
		}
	}
	return false
}

func waitTrue(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out: %s", what)
}

// Liveness and readiness wait for the startup probe; a failing startup probe reports
// failure after its threshold and nothing else runs.
func TestRunStartupGates(t *testing.T) {
	var mu sync.Mutex
	calls := map[*corev1.Probe]int{}
	startupOK := false
	startup := &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 100}
	live := &corev1.Probe{PeriodSeconds: 1}
	ready := &corev1.Probe{PeriodSeconds: 1}
	run := func(ctx context.Context, p *corev1.Probe) (Result, string) {
		mu.Lock()
		defer mu.Unlock()
		calls[p]++
		if p == startup && !startupOK {
			return Failure, "not yet"
		}
		return Success, ""
	}
	r := &rec{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Run(ctx, Probes{Startup: startup, Liveness: live, Readiness: ready}, time.Now(), time.Millisecond, run, r.report)
	waitTrue(t, "startup probed", func() bool { mu.Lock(); defer mu.Unlock(); return calls[startup] >= 5 })
	mu.Lock()
	if calls[live]+calls[ready] != 0 {
		t.Fatalf("liveness/readiness ran before startup succeeded: %v", calls)
	}
	startupOK = true
	mu.Unlock()
	waitTrue(t, "started and ready", func() bool { return r.has("Startup:success") && r.has("Readiness:success") })

	r2 := &rec{}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	done := make(chan struct{})
	go func() {
		Run(ctx2, Probes{Startup: &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 3}, Liveness: live}, time.Now(), time.Millisecond,
			func(context.Context, *corev1.Probe) (Result, string) { return Failure, "down" }, r2.report)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("failed startup probe did not end Run")
	}
	if !r2.has("Startup:failure") || r2.has("Liveness:failure") {
		t.Fatalf("events %v", r2.evs)
	}
}

// initialDelaySeconds holds the first probe back; liveness reports only after the threshold.
func TestRunDelayAndLivenessThreshold(t *testing.T) {
	var mu sync.Mutex
	var first time.Time
	n := 0
	start := time.Now()
	live := &corev1.Probe{InitialDelaySeconds: 50, PeriodSeconds: 1, FailureThreshold: 4}
	r := &rec{}
	Run(context.Background(), Probes{Liveness: live}, start, time.Millisecond, func(context.Context, *corev1.Probe) (Result, string) {
		mu.Lock()
		defer mu.Unlock()
		if n == 0 {
			first = time.Now()
		}
		n++
		return Failure, "x"
	}, r.report)
	if first.Sub(start) < 50*time.Millisecond {
		t.Fatalf("first probe after %s, before the initial delay", first.Sub(start))
	}
	if n != 4 || !r.has("Liveness:failure") {
		t.Fatalf("probes %d events %v", n, r.evs)
	}
}

func TestProberHandlers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(200)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/header":
			if r.Header.Get("X-Probe") != "yes" {
				w.WriteHeader(400)
			}
		default:
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	c := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	pr := &Prober{Exec: func(ctx context.Context, cmd []string) (int, string, error) {
		if cmd[0] == "true" {
			return 0, "", nil
		}
		return 1, "boom", nil
	}}
	get := func(path string, hdr ...corev1.HTTPHeader) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http"), HTTPHeaders: hdr}}}
	}
	cases := []struct {
		name string
		p    *corev1.Probe
		want Result
	}{
		{"http ok", get("/ok"), Success},
		{"http redirect", get("/redirect"), Success},
		{"http 503", get("/bad"), Failure},
		{"http header", get("/header", corev1.HTTPHeader{Name: "X-Probe", Value: "yes"}), Success},
		{"tcp open", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}}, Success},
		{"tcp closed", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(1)}}}, Failure},
		{"named port missing", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("nope")}}}, Failure},
		{"exec 0", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}, Success},
		{"exec 1", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}}}, Failure},
		{"grpc", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 1}}}, Failure},
		{"none", &corev1.Probe{}, Failure},
	}
	for _, tc := range cases {
		if got, msg := pr.Do(context.Background(), tc.p, host, c, time.Second); got != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got, msg, tc.want)
		}
	}
}
