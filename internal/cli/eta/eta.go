// Package eta estimates how long an AsyncTask has left from the progress one client has seen of it: a weighted
// recent rate once progress has moved while the client watched, before that a linear estimate from
// status.startTime, nothing for vendors that report no progress, and "stalled" past the task's progress
// deadline. It is pure: every time is passed in, so get and wait share it and tests replay recorded series.
package eta

import (
	"fmt"
	"math"
	"time"
)

// HalfLife is the age at which a stretch of progress counts half as much in the rate as one that just ended.
// A minute lets the estimate follow a change of pace within a couple of minutes, while at the default 10 s poll
// interval about six polls share the weight, which smooths the steps of integer progress and of poll timing.
const HalfLife = time.Minute

// MaxRemaining caps an estimate: beyond it the number says nothing useful, so it is shown as ">99d".
const MaxRemaining = 99 * 24 * time.Hour

// Estimator follows one task's progress as one client sees it. The zero value is not usable; use New.
//
// It keeps no list of samples: the weighted rate is two exponentially decayed sums, the progress gained and
// the time it took over each interval between changes, so rate = Σ wᵢ·Δpᵢ / Σ wᵢ·Δtᵢ with wᵢ = 2^(-ageᵢ/HalfLife).
// That is the average pace over the history with recent time counting more. Unlike an average of per-interval
// rates it weights each interval by its length, so a long slow stretch is not outvoted by a burst of quick
// reports, and it needs no division by an interval that may be zero.
type Estimator struct {
	reportsProgress bool // the latest status carried progress; the fields below describe it
	seen            bool // at least one progress value since the history began
	restarted       bool // progress went backwards: startTime no longer marks this progress's zero

	progress  int32     // the latest progress seen
	changedAt time.Time // when the client saw progress reach it (or the operator's record of that, if earlier)
	step      int32     // the latest increase, the size of the reports this vendor makes

	gained  float64 // Σ wᵢ·Δpᵢ, percent
	elapsed float64 // Σ wᵢ·Δtᵢ, seconds

	lastChange time.Time // the latest status.lastProgressTime seen
}

// New returns an Estimator with no history.
func New() *Estimator { return &Estimator{} }

// Observe records what the client saw at `at`: progress is nil when the vendor reports none. Call it for each
// status the client sees (repeats are fine; they must not distort the rate). lastChange is status.lastProgressTime
// (zero when unset) — the operator's own record of when progress or vendor status last changed.
//
// A new progress value is dated lastChange when that falls between the previous change and at, since the
// operator saw it first; otherwise at. Progress that goes backwards (the vendor restarted a phase) drops the
// history, and a status without progress clears it.
func (e *Estimator) Observe(at time.Time, progress *int32, lastChange time.Time) {
	if lastChange.After(e.lastChange) {
		e.lastChange = lastChange
	}
	if progress == nil {
		*e = Estimator{lastChange: e.lastChange}
		return
	}
	p := min(max(*progress, 0), 100)
	if e.seen && p == e.progress {
		return
	}
	when := at
	if !lastChange.IsZero() && !lastChange.After(at) && (!e.seen || lastChange.After(e.changedAt)) {
		when = lastChange
	}
	if !e.seen || p < e.progress { // a first value, or a restart when there was one before
		*e = Estimator{reportsProgress: true, seen: true, restarted: e.seen, progress: p, changedAt: when,
			lastChange: e.lastChange}
		return
	}
	dt := max(when.Sub(e.changedAt).Seconds(), 0) // an observation out of order gained its progress at once
	decay := math.Exp2(-dt / HalfLife.Seconds())
	e.gained = e.gained*decay + float64(p-e.progress)
	e.elapsed = e.elapsed*decay + dt
	e.step = p - e.progress
	e.progress = p
	if when.After(e.changedAt) {
		e.changedAt = when
	}
}

// Estimate is the ETA at now for a task that started at start (status.startTime; zero when unknown) and has
// progressDeadline (spec.progressDeadlineSeconds as a Duration; 0 when unset = never "stalled").
//
// Done (progress 100) wins over Stalled, which wins over everything else, even a vendor without progress, since
// lastChange also records vendor status changes. With a rate, the estimate counts down from (100-p)/rate to
// when the next report of the vendor's usual step is due; once that report is late it counts up again by as
// much as it is late (a report overdue by x is taken to need about x more), so waiting never shows "0s".
// Without a rate it is linear from start: (now-start)·(100-p)/p, which also grows while nothing moves; it is
// Unknown for progress 0, an unknown start, or after progress went backwards.
func (e *Estimator) Estimate(now, start time.Time, progressDeadline time.Duration) Estimate {
	if e.reportsProgress && e.progress == 100 {
		return Estimate{State: Done}
	}
	if progressDeadline > 0 {
		last := e.lastChange
		if e.changedAt.After(last) {
			last = e.changedAt
		}
		if !last.IsZero() && now.Sub(last) > progressDeadline {
			return Estimate{State: Stalled}
		}
	}
	if !e.reportsProgress {
		return Estimate{}
	}
	toGo := float64(100 - e.progress)
	var seconds float64
	switch {
	case e.elapsed > 0:
		rate := e.gained / e.elapsed
		due := float64(min(e.step, 100-e.progress)) / rate // the next report, in seconds after the last change
		since := max(now.Sub(e.changedAt).Seconds(), 0)
		seconds = toGo/rate - due + math.Abs(since-due)
	case e.restarted || e.progress == 0 || start.IsZero() || !now.After(start):
		return Estimate{}
	default:
		seconds = now.Sub(start).Seconds() * toGo / float64(e.progress)
	}
	if !(seconds < MaxRemaining.Seconds()) { // also catches NaN and +Inf
		return Estimate{State: Known, Remaining: MaxRemaining}
	}
	// An estimate for a task that is not done is at least a second: "0s" would read as finished.
	return Estimate{State: Known, Remaining: time.Duration(max(math.Round(seconds), 1)) * time.Second}
}

// State says what an Estimate knows.
type State int

// The states of an Estimate.
const (
	Unknown State = iota // nothing to say: no progress reported, or not enough to estimate (e.g. progress 0)
	Known                // Remaining is set
	Stalled              // nothing changed for longer than the progress deadline
	Done                 // progress is 100
)

// Estimate is what an Estimator can say about the time left.
type Estimate struct {
	State State
	// Remaining is set when State is Known: whole seconds, at least one, at most MaxRemaining.
	Remaining time.Duration
}

// String is what a table shows: "" for Unknown, "stalled", "done", or the time left, compact as kubectl's
// ages are: "45s", "3m20s", "1h05m", "2d3h" (truncated to the two largest units), and ">99d" at MaxRemaining.
func (e Estimate) String() string {
	switch e.State {
	case Stalled:
		return "stalled"
	case Done:
		return "done"
	case Known:
	default:
		return ""
	}
	if e.Remaining >= MaxRemaining {
		return ">99d"
	}
	s := int64(max(e.Remaining, 0) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
	}
}
