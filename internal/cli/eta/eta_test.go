package eta

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus seconds: the series below are recorded as offsets in seconds.
func at(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }

// none is a progress the vendor does not report.
const none = -1

// status is one status a client saw: at and changed (status.lastProgressTime; 0 leaves it unset) as offsets
// in seconds, progress in percent or none.
type status struct{ at, progress, changed int }

// steps is a series of (seconds, progress) pairs without lastProgressTime.
func steps(pairs ...int) []status {
	var s []status
	for i := 0; i+1 < len(pairs); i += 2 {
		s = append(s, status{at: pairs[i], progress: pairs[i+1]})
	}
	return s
}

func replay(series []status) *Estimator {
	e := New()
	for _, s := range series {
		observe(e, s)
	}
	return e
}

func observe(e *Estimator, s status) {
	var progress *int32
	if s.progress != none {
		p := int32(s.progress)
		progress = &p
	}
	var changed time.Time
	if s.changed != 0 {
		changed = at(s.changed)
	}
	e.Observe(at(s.at), progress, changed)
}

func known(seconds int) Estimate {
	return Estimate{State: Known, Remaining: time.Duration(seconds) * time.Second}
}

func TestEstimate(t *testing.T) {
	cases := map[string]struct {
		reason   string
		seen     []status
		start    time.Time
		now      int
		deadline time.Duration
		want     Estimate
	}{
		"SteadyPaceGivesTheRemainingWorkAtThatPace": {
			reason: "10% per 10 s at 10% leaves 90 s.",
			seen:   steps(0, 0, 10, 10),
			now:    10,
			want:   known(90),
		},
		"SteadyPaceCountsDownBetweenReports": {
			reason: "At 30% after 1%/s, 5 s into the 10 s until the next report: 70 - 5.",
			seen:   steps(0, 0, 10, 10, 20, 20, 30, 30),
			now:    35,
			want:   known(65),
		},
		"RepeatedObservationsDoNotChangeTheEstimate": {
			reason: "The same status seen many times is one sample: as steady 1%/s, 2 s after reaching 10%.",
			seen:   steps(0, 0, 0, 0, 3, 0, 6, 0, 10, 10, 10, 10, 11, 10, 12, 10),
			now:    12,
			want:   known(88),
		},
		"OverdueFinalReportCountsUpInsteadOfShowingZero": {
			reason: "The rate says 10 s left at 90%; 30 s later the report is 20 s late, so 20 s more.",
			seen:   steps(0, 80, 10, 90),
			now:    40,
			want:   known(20),
		},
		"OverdueReportGrowsTheEstimate": {
			reason: "90 s left at 10%, but 40 s without the report due after 10: 90 - 10 + 30.",
			seen:   steps(0, 0, 10, 10),
			now:    50,
			want:   known(110),
		},
		"BackwardsDropsTheHistoryUntilTheNextChange": {
			reason: "After 60 -> 20 neither the old rate nor startTime describes the new phase.",
			seen:   steps(0, 20, 10, 40, 20, 60, 30, 20),
			start:  at(-100),
			now:    30,
			want:   Estimate{},
		},
		"BackwardsRestartsTheRateFromTheNewPoint": {
			reason: "20 -> 30 in 10 s after the restart is 1%/s (70 s), not the 2%/s from before it (35 s).",
			seen:   steps(0, 20, 10, 40, 20, 60, 30, 20, 40, 30),
			now:    40,
			want:   known(70),
		},
		"JumpFrom5To100IsDone": {
			seen: steps(0, 5, 10, 100),
			now:  10,
			want: Estimate{State: Done},
		},
		"JumpFrom5To95IsAFastRate": {
			reason: "9%/s leaves about half a second, shown as the smallest estimate.",
			seen:   steps(0, 5, 10, 95),
			now:    10,
			want:   known(1),
		},
		"DoneWinsOverStalled": {
			seen:     steps(0, 5, 10, 100),
			now:      1000,
			deadline: time.Minute,
			want:     Estimate{State: Done},
		},
		"VendorWithoutProgressIsUnknown": {
			seen:  []status{{at: 0, progress: none}, {at: 10, progress: none}},
			start: at(-100),
			now:   10,
			want:  Estimate{},
		},
		"ProgressNoLongerReportedIsUnknown": {
			seen: append(steps(0, 10, 10, 20), status{at: 20, progress: none}),
			now:  20,
			want: Estimate{},
		},
		"OneSampleIsLinearFromStart": {
			reason: "25% in 100 s since startTime leaves 300 s.",
			seen:   steps(100, 25),
			start:  at(0),
			now:    100,
			want:   known(300),
		},
		"OneSampleGrowsWhileNothingMoves": {
			reason: "Still 25% after 200 s since startTime leaves 600 s.",
			seen:   steps(100, 25),
			start:  at(0),
			now:    200,
			want:   known(600),
		},
		"OneSampleWithoutStartIsUnknown": {
			seen: steps(100, 25),
			now:  100,
			want: Estimate{},
		},
		"ProgressZeroIsUnknown": {
			seen:  steps(0, 0, 10, 0),
			start: at(-100),
			now:   10,
			want:  Estimate{},
		},
		"StalledPastTheDeadline": {
			seen:     steps(0, 50, 10, 60),
			now:      71,
			deadline: time.Minute,
			want:     Estimate{State: Stalled},
		},
		"NotStalledAtTheDeadline": {
			reason: "60 s without change is not longer than 60 s: 40 - 10 + 50 (overdue).",
			seen:   steps(0, 50, 10, 60),
			now:    70, deadline: time.Minute,
			want: known(80),
		},
		"NeverStalledWithoutADeadline": {
			seen: steps(0, 50, 10, 60),
			now:  71,
			want: known(81),
		},
		"OperatorsLastChangeKeepsATaskFromStalling": {
			reason: "The client saw no change for 90 s, but the operator recorded one (vendor status) 50 s ago.",
			seen:   []status{{at: 0, progress: 50}, {at: 50, progress: 50, changed: 40}},
			start:  at(-100),
			now:    90, deadline: time.Minute,
			want: known(190),
		},
		"OperatorsLastChangeStallsASingleStatus": {
			reason: "A one-shot get sees no change itself; the operator's record is 500 s old.",
			seen:   []status{{at: 600, progress: 50, changed: 100}},
			start:  at(0),
			now:    600, deadline: 5 * time.Minute,
			want: Estimate{State: Stalled},
		},
		"VendorWithoutProgressCanStall": {
			reason: "lastProgressTime also records vendor status changes.",
			seen:   []status{{at: 600, progress: none, changed: 100}},
			now:    600, deadline: 5 * time.Minute,
			want: Estimate{State: Stalled},
		},
		"OperatorsLastChangeDatesAProgressValue": {
			reason: "10% at 10 s and 20% at 20 s by the operator's record is 1%/s, though the client saw them at 20 and 25.",
			seen:   []status{{at: 20, progress: 10, changed: 10}, {at: 25, progress: 20, changed: 20}},
			now:    25,
			want:   known(75),
		},
		"AbsurdlySlowIsCapped": {
			seen: steps(0, 0, 8_640_000, 1),
			now:  8_640_000,
			want: Estimate{State: Known, Remaining: MaxRemaining},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := replay(tc.seen).Estimate(at(tc.now), tc.start, tc.deadline)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nEstimate(): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestWeightedRateFollowsTheRecentPace(t *testing.T) {
	cases := map[string]struct {
		seen []status
		// The estimates from the whole history at an even weight, and from the latest interval alone.
		wholeHistory, latestOnly time.Duration
	}{
		"Accelerating": {
			seen:         steps(0, 0, 100, 10, 110, 20, 120, 30, 130, 40, 140, 50),
			wholeHistory: 140 * time.Second, // 50% in 140 s
			latestOnly:   50 * time.Second,  // 10% in 10 s
		},
		"Decelerating": {
			seen:         steps(0, 0, 10, 10, 20, 20, 30, 30, 40, 40, 140, 50),
			wholeHistory: 140 * time.Second,
			latestOnly:   500 * time.Second, // 10% in 100 s
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := replay(tc.seen).Estimate(at(140), time.Time{}, 0)
			if got.State != Known {
				t.Fatalf("Estimate(): got %+v, want Known", got)
			}
			lo, hi := min(tc.wholeHistory, tc.latestOnly), max(tc.wholeHistory, tc.latestOnly)
			if got.Remaining <= lo || got.Remaining >= hi {
				t.Errorf("Estimate(): got %v, want strictly between the whole history's %v and the latest pace's %v",
					got.Remaining, tc.wholeHistory, tc.latestOnly)
			}
		})
	}
}

func TestEstimateString(t *testing.T) {
	cases := map[string]struct {
		estimate Estimate
		want     string
	}{
		"UnknownIsBlank":       {Estimate{}, ""},
		"Stalled":              {Estimate{State: Stalled}, "stalled"},
		"Done":                 {Estimate{State: Done}, "done"},
		"Seconds":              {known(45), "45s"},
		"MinutesAndSeconds":    {known(200), "3m20s"},
		"MinutesPadSeconds":    {known(65), "1m05s"},
		"HoursAndMinutes":      {known(3900), "1h05m"},
		"HoursDropSeconds":     {known(3600 + 59), "1h00m"},
		"DaysAndHours":         {known(2*86400 + 3*3600 + 1800), "2d3h"},
		"CapIsShownAsMoreThan": {Estimate{State: Known, Remaining: MaxRemaining}, ">99d"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tc.estimate.String(); got != tc.want {
				t.Errorf("%+v.String(): got %q, want %q", tc.estimate, got, tc.want)
			}
		})
	}
}

// FuzzEstimate replays random series, three bytes a status: the seconds since the previous one (signed, so
// out of order too), the progress (255 for none, else byte-20, so outside 0..100 too) and lastProgressTime
// (0 for unset, else signed seconds from the status's own time). After each status the estimate must be
// well formed, and seeing that status again must not change it.
func FuzzEstimate(f *testing.F) {
	f.Add([]byte{0, 20, 0, 10, 30, 0, 10, 40, 0}, int16(-100), uint16(60))
	f.Add([]byte{0, 80, 0, 10, 40, 0, 10, 120, 0, 0, 255, 1}, int16(0), uint16(0))
	f.Add([]byte{200, 25, 0, 0, 25, 0, 10, 255, 130, 1, 21, 0}, int16(-500), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, start int16, deadlineSeconds uint16) {
		e := New()
		now := 0
		for i := 0; i+2 < len(data); i += 3 {
			now += int(int8(data[i]))
			s := status{at: now, progress: int(data[i+1]) - 20}
			if data[i+1] == 255 {
				s.progress = none
			}
			if data[i+2] != 0 {
				s.changed = now + int(int8(data[i+2]))
			}
			observe(e, s)
			deadline := time.Duration(deadlineSeconds) * time.Second
			got := e.Estimate(at(now), at(int(start)), deadline)
			switch {
			case got.State < Unknown || got.State > Done:
				t.Fatalf("after %+v: state %d", s, got.State)
			case got.State == Known && (got.Remaining < time.Second || got.Remaining > MaxRemaining):
				t.Fatalf("after %+v: Known with Remaining %v", s, got.Remaining)
			case got.State != Known && got.Remaining != 0:
				t.Fatalf("after %+v: %d with Remaining %v", s, got.State, got.Remaining)
			case (got.String() == "") != (got.State == Unknown):
				t.Fatalf("after %+v: %+v shows %q", s, got, got.String())
			}
			again := *e
			observe(&again, s)
			if repeated := again.Estimate(at(now), at(int(start)), deadline); repeated != got {
				t.Fatalf("seeing %+v again changed the estimate from %+v to %+v", s, got, repeated)
			}
		}
	})
}
