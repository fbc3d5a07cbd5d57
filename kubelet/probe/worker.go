package probe

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Tracker turns single results into a probe's state with success and failure thresholds:
// the state flips only after SuccessThreshold consecutive successes or FailureThreshold
// consecutive failures.
type Tracker struct {
	SuccessThreshold int
	FailureThreshold int
	state            Result
	succ, fail       int
}

// NewTracker starts in state initial with p's thresholds (defaults 1 and 3).
func NewTracker(p *corev1.Probe, initial Result) *Tracker {
	return &Tracker{SuccessThreshold: int(orDefault(p.SuccessThreshold, 1)), FailureThreshold: int(orDefault(p.FailureThreshold, 3)), state: initial}
}

// Observe records one result and returns the state and whether it changed.
func (t *Tracker) Observe(r Result) (Result, bool) {
	prev := t.state
	switch r {
	case Success:
		t.succ++
		t.fail = 0
		if t.succ >= t.SuccessThreshold {
			t.state = Success
		}
	case Failure:
		t.fail++
		t.succ = 0
		if t.fail >= t.FailureThreshold {
			t.state = Failure
		}
	}
	return t.state, t.state != prev
}

// State is the current thresholded state.
func (t *Tracker) State() Result { return t.state }

// Probes are a container's probes.
type Probes struct {
	Startup, Liveness, Readiness *corev1.Probe
}

// RunFunc performs one probe.
type RunFunc func(ctx context.Context, p *corev1.Probe) (Result, string)

// ReportFunc receives state changes: Startup Success means started, Startup or Liveness
// Failure means the container must be killed, Readiness Success/Failure is ready/not ready.
type ReportFunc func(kind Kind, r Result, msg string)

// Run probes one container instance that started at started until ctx ends. unit is the
// length of one probe "second" (time.Second outside tests). Readiness starts as Failure when
// a readiness probe exists; Run reports Startup Success at once when there is no startup probe.
func Run(ctx context.Context, ps Probes, started time.Time, unit time.Duration, run RunFunc, report ReportFunc) {
	if ps.Startup != nil {
		if loop(ctx, Startup, ps.Startup, started, unit, Unknown, run, report) != Success {
			return
		}
	} else {
		report(Startup, Success, "")
	}
	var wg sync.WaitGroup
	if ps.Liveness != nil {
		wg.Add(1)
		go func() { defer wg.Done(); loop(ctx, Liveness, ps.Liveness, started, unit, Success, run, report) }()
	}
	if ps.Readiness != nil {
		wg.Add(1)
		go func() { defer wg.Done(); loop(ctx, Readiness, ps.Readiness, started, unit, Failure, run, report) }()
	}
	wg.Wait()
}

// loop runs one probe on its schedule. Startup and liveness stop at their first decisive
// result (success for startup, failure for both); readiness runs until ctx ends.
func loop(ctx context.Context, kind Kind, p *corev1.Probe, started time.Time, unit time.Duration, initial Result, run RunFunc, report ReportFunc) Result {
	tr := NewTracker(p, initial)
	period := time.Duration(orDefault(p.PeriodSeconds, 10)) * unit
	first := started.Add(time.Duration(p.InitialDelaySeconds) * unit)
	timer := time.NewTimer(time.Until(first))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return Unknown
		case <-timer.C:
		}
		r, msg := run(ctx, p)
		if ctx.Err() != nil {
			return Unknown
		}
		state, changed := tr.Observe(r)
		switch kind {
		case Startup:
			if state == Success || state == Failure {
				report(kind, state, msg)
				return state
			}
		case Liveness:
			if state == Failure {
				report(kind, state, msg)
				return state
			}
		case Readiness:
			if changed {
				report(kind, state, msg)
			}
		}
		timer.Reset(period)
	}
}
