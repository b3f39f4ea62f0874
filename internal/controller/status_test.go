package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// conditionSummary is a condition reduced to what the contract's table specifies.
type conditionSummary struct {
	Status metav1.ConditionStatus
	Reason string
}

func summarise(conds []metav1.Condition) map[string]conditionSummary {
	out := map[string]conditionSummary{}
	for _, c := range conds {
		out[c.Type] = conditionSummary{c.Status, c.Reason}
	}
	return out
}

var (
	created = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	now     = created.Add(time.Minute)
)

func running(progress int32) *backend.Observation {
	return &backend.Observation{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "processing", Progress: ptr.To(progress)}
}

func TestStatusFollowsTheContractTable(t *testing.T) {
	type want struct {
		phase      v1alpha1.TaskPhase
		conditions map[string]conditionSummary
	}
	inProgress := func(reason string) map[string]conditionSummary {
		return map[string]conditionSummary{
			v1alpha1.ConditionReady:       {metav1.ConditionFalse, reason},
			v1alpha1.ConditionReconciling: {metav1.ConditionTrue, reason},
		}
	}
	failed := func(reason string) map[string]conditionSummary {
		return map[string]conditionSummary{
			v1alpha1.ConditionReady:    {metav1.ConditionFalse, reason},
			v1alpha1.ConditionStalled:  {metav1.ConditionTrue, reason},
			v1alpha1.ConditionFinished: {metav1.ConditionTrue, reason},
		}
	}
	cases := map[string]struct {
		spec    v1alpha1.AsyncTaskSpec
		before  v1alpha1.AsyncTaskStatus
		outcome pollOutcome
		want    want
	}{
		"pending": {
			outcome: pollOutcome{observation: &backend.Observation{Phase: v1alpha1.TaskPhasePending, VendorStatus: "waiting"}},
			want:    want{v1alpha1.TaskPhasePending, inProgress(v1alpha1.ReasonPending)},
		},
		"running": {
			outcome: pollOutcome{observation: running(40)},
			want:    want{v1alpha1.TaskPhaseRunning, inProgress(v1alpha1.ReasonRunning)},
		},
		"running, backend failing": {
			before:  v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseRunning},
			outcome: pollOutcome{err: backend.Errorf(backend.KindTransient, "cannot reach vendor")},
			want:    want{v1alpha1.TaskPhaseRunning, inProgress(v1alpha1.ReasonBackendUnavailable)},
		},
		"running, authentication failing": {
			before:  v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseRunning},
			outcome: pollOutcome{err: backend.Errorf(backend.KindAuthentication, "vendor answered HTTP 401")},
			want:    want{v1alpha1.TaskPhaseRunning, inProgress(v1alpha1.ReasonAuthenticationFailed)},
		},
		"backend missing": {
			outcome: pollOutcome{err: &backend.Error{Kind: backend.KindBackendNotFound, Message: "TaskBackend ns/x not found"}},
			want:    want{v1alpha1.TaskPhasePending, inProgress(v1alpha1.ReasonBackendNotFound)},
		},
		"backend unusable": {
			outcome: pollOutcome{err: &backend.Error{Kind: backend.KindSecretNotFound, Message: "credentials Secret ns/x not found"}},
			want:    want{v1alpha1.TaskPhasePending, inProgress(v1alpha1.ReasonBackendUnavailable)},
		},
		"running, no change for progressDeadlineSeconds": {
			spec: v1alpha1.AsyncTaskSpec{ProgressDeadlineSeconds: ptr.To[int32](30)},
			before: v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "processing", Progress: ptr.To[int32](40),
				LastProgressTime: ptr.To(metav1.NewTime(now.Add(-31 * time.Second)))},
			outcome: pollOutcome{observation: running(40)},
			want: want{v1alpha1.TaskPhaseRunning, map[string]conditionSummary{
				v1alpha1.ConditionReady:       {metav1.ConditionFalse, v1alpha1.ReasonRunning},
				v1alpha1.ConditionReconciling: {metav1.ConditionTrue, v1alpha1.ReasonRunning},
				v1alpha1.ConditionStalled:     {metav1.ConditionTrue, v1alpha1.ReasonProgressDeadlineExceeded},
			}},
		},
		"progress clears the stall": {
			spec: v1alpha1.AsyncTaskSpec{ProgressDeadlineSeconds: ptr.To[int32](30)},
			before: v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "processing", Progress: ptr.To[int32](40),
				LastProgressTime: ptr.To(metav1.NewTime(now.Add(-31 * time.Second)))},
			outcome: pollOutcome{observation: running(41)},
			want:    want{v1alpha1.TaskPhaseRunning, inProgress(v1alpha1.ReasonRunning)},
		},
		"succeeded": {
			outcome: pollOutcome{observation: &backend.Observation{Phase: v1alpha1.TaskPhaseSucceeded, VendorStatus: "succeed"}},
			want: want{v1alpha1.TaskPhaseSucceeded, map[string]conditionSummary{
				v1alpha1.ConditionReady:    {metav1.ConditionTrue, v1alpha1.ReasonSucceeded},
				v1alpha1.ConditionFinished: {metav1.ConditionTrue, v1alpha1.ReasonSucceeded},
			}},
		},
		"failed": {
			outcome: pollOutcome{observation: &backend.Observation{Phase: v1alpha1.TaskPhaseFailed, VendorStatus: "failed"}},
			want:    want{v1alpha1.TaskPhaseFailed, failed(v1alpha1.ReasonTaskFailed)},
		},
		"deadline exceeded": {
			spec:    v1alpha1.AsyncTaskSpec{ActiveDeadlineSeconds: ptr.To[int64](60)},
			outcome: pollOutcome{observation: running(10)},
			want:    want{v1alpha1.TaskPhaseFailed, failed(v1alpha1.ReasonDeadlineExceeded)},
		},
		"third not-found in a row": {
			before:  v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseRunning, ConsecutiveErrors: 2, ConsecutiveNotFound: 2},
			outcome: pollOutcome{err: backend.Errorf(backend.KindNotFound, "vendor answered HTTP 404")},
			want:    want{v1alpha1.TaskPhaseFailed, failed(v1alpha1.ReasonTaskNotFound)},
		},
		"second not-found in a row": {
			before:  v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseRunning, ConsecutiveErrors: 1, ConsecutiveNotFound: 1},
			outcome: pollOutcome{err: backend.Errorf(backend.KindNotFound, "vendor answered HTTP 404")},
			want:    want{v1alpha1.TaskPhaseRunning, inProgress(v1alpha1.ReasonBackendUnavailable)},
		},
		"terminal error": {
			outcome: pollOutcome{err: backend.Errorf(backend.KindTerminal, "vendor answered HTTP 400")},
			want:    want{v1alpha1.TaskPhaseFailed, failed(v1alpha1.ReasonTaskFailed)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			task := &v1alpha1.AsyncTask{
				ObjectMeta: metav1.ObjectMeta{Generation: 2, CreationTimestamp: metav1.NewTime(created)},
				Spec:       tc.spec,
				Status:     tc.before,
			}
			got := statusFromOutcome(task, tc.outcome, "", now)
			if diff := cmp.Diff(tc.want.phase, got.Phase); diff != "" {
				t.Errorf("phase (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want.conditions, summarise(got.Conditions)); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			if got.ObservedGeneration != 2 {
				t.Errorf("observedGeneration = %d, want 2", got.ObservedGeneration)
			}
			if !slices.IsSortedFunc(got.Conditions, func(a, b metav1.Condition) int {
				return conditionOrder[a.Type] - conditionOrder[b.Type]
			}) {
				t.Errorf("conditions not in kstatus order (Stalled before Reconciling): %v", got.Conditions)
			}
			for _, c := range got.Conditions {
				if c.Message == "" || c.ObservedGeneration != 2 {
					t.Errorf("condition %s: message %q, observedGeneration %d", c.Type, c.Message, c.ObservedGeneration)
				}
			}
		})
	}
}

func TestBackendErrorKeepsTheLastGoodObservation(t *testing.T) {
	task := &v1alpha1.AsyncTask{Status: v1alpha1.AsyncTaskStatus{
		Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "processing", Progress: ptr.To[int32](40), TaskName: "import_api",
	}}
	got := statusFromOutcome(task, pollOutcome{err: backend.Errorf(backend.KindTransient, "cannot reach vendor")}, "", now)
	if got.Phase != v1alpha1.TaskPhaseRunning || got.VendorStatus != "processing" || *got.Progress != 40 || got.TaskName != "import_api" {
		t.Errorf("last observation lost: %+v", got)
	}
	if got.ConsecutiveErrors != 1 || got.Message != "Cannot reach vendor" {
		t.Errorf("error not recorded: errors %d, message %q", got.ConsecutiveErrors, got.Message)
	}
	again := statusFromOutcome(&v1alpha1.AsyncTask{Status: got}, pollOutcome{observation: running(50)}, "", now)
	if again.ConsecutiveErrors != 0 {
		t.Errorf("consecutiveErrors = %d after a good poll, want 0", again.ConsecutiveErrors)
	}
}

func TestFinishedStatusIsFinal(t *testing.T) {
	before := v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseSucceeded, Message: "done"}
	task := &v1alpha1.AsyncTask{Status: before}
	got := statusFromOutcome(task, pollOutcome{observation: running(10)}, "", now)
	if got.Phase != v1alpha1.TaskPhaseSucceeded || got.Message != "done" {
		t.Errorf("finished status changed: %+v", got)
	}
}

func TestLargeResultIsLeftOutOfStatus(t *testing.T) {
	big := make([]byte, 0, maxResultBytes+16)
	big = append(big, '"')
	for len(big) < maxResultBytes+8 {
		big = append(big, 'x')
	}
	big = append(big, '"')
	got := statusFromOutcome(&v1alpha1.AsyncTask{}, pollOutcome{observation: &backend.Observation{
		Phase: v1alpha1.TaskPhaseSucceeded, Result: big}}, "", now)
	if got.Result != nil || !got.ResultTruncated {
		t.Errorf("result kept (%v) or not marked truncated (%v)", got.Result != nil, got.ResultTruncated)
	}
}

// TestResultNoteIsInTheMessageOfTheStatusAndOfReady: a result that could not be written to its ConfigMap is
// said in status.message and in the Ready condition alike.
func TestResultNoteIsInTheMessageOfTheStatusAndOfReady(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	note := "ConfigMap r exists and does not belong to this task; the result was not written to it"
	for name, obs := range map[string]*backend.Observation{
		"with a vendor message": {Phase: v1alpha1.TaskPhaseSucceeded, Message: "done", Result: []byte(`{}`)},
		"without one":           {Phase: v1alpha1.TaskPhaseSucceeded, Result: []byte(`{}`)},
	} {
		got := statusFromOutcome(&v1alpha1.AsyncTask{}, pollOutcome{observation: obs}, note, now)
		g.Expect(got.Message).To(HaveSuffix(note), name)
		g.Expect(condition(got.Conditions, v1alpha1.ConditionReady).Message).To(Equal(got.Message), name)
	}
}

// TestConditionsMoveTheirTransitionTimeToNowOnlyWhenTheyFlip: the transition time comes from the time the
// status function is given, and stays while the condition's status does.
func TestConditionsMoveTheirTransitionTimeToNowOnlyWhenTheyFlip(t *testing.T) {
	g := NewWithT(t)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	task := &v1alpha1.AsyncTask{}
	task.Status = statusFromOutcome(task, pollOutcome{observation: running(10)}, "", start)
	ready := condition(task.Status.Conditions, v1alpha1.ConditionReady)
	g.Expect(ready.LastTransitionTime.Time).To(Equal(start))

	task.Status = statusFromOutcome(task, pollOutcome{observation: running(20)}, "", start.Add(time.Minute))
	g.Expect(condition(task.Status.Conditions, v1alpha1.ConditionReady).LastTransitionTime.Time).To(Equal(start), "still False")

	done := start.Add(2 * time.Minute)
	task.Status = statusFromOutcome(task, pollOutcome{observation: &backend.Observation{Phase: v1alpha1.TaskPhaseSucceeded}}, "", done)
	g.Expect(condition(task.Status.Conditions, v1alpha1.ConditionReady).LastTransitionTime.Time).To(Equal(done), "flipped to True")
	g.Expect(condition(task.Status.Conditions, v1alpha1.ConditionFinished).LastTransitionTime.Time).To(Equal(done))
}

func TestStatusEqualityIgnoresResultKeyOrder(t *testing.T) {
	a := v1alpha1.AsyncTaskStatus{Result: &v1alpha1.JSON{Raw: []byte(`{"b":1,"a":[1,2]}`)}}
	b := v1alpha1.AsyncTaskStatus{Result: &v1alpha1.JSON{Raw: []byte(`{"a": [1, 2], "b": 1}`)}}
	if !statusEquality.DeepEqual(a, b) {
		t.Error("equal results with different key order compare unequal")
	}
	c := v1alpha1.AsyncTaskStatus{Result: &v1alpha1.JSON{Raw: []byte(`{"a":[2,1],"b":1}`)}}
	if statusEquality.DeepEqual(a, c) {
		t.Error("different results compare equal")
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	interval := 10 * time.Second
	cases := map[string]struct {
		errors     int32
		retryAfter time.Duration
		atLeast    time.Duration
		atMost     time.Duration
	}{
		"first error":        {errors: 1, atLeast: 9500 * time.Millisecond, atMost: 10500 * time.Millisecond},
		"third error":        {errors: 3, atLeast: 38 * time.Second, atMost: 42 * time.Second},
		"capped":             {errors: 30, atLeast: maxBackoff, atMost: maxBackoff},
		"retry-after longer": {errors: 1, retryAfter: 2 * time.Minute, atLeast: 2 * time.Minute, atMost: 2 * time.Minute},
		"retry-after capped": {errors: 1, retryAfter: time.Hour, atLeast: maxBackoff, atMost: maxBackoff},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := newScheduler().backoff(interval, tc.errors, tc.retryAfter)
			if got < tc.atLeast || got > tc.atMost {
				t.Errorf("backoff = %s, want within [%s, %s]", got, tc.atLeast, tc.atMost)
			}
		})
	}
}
