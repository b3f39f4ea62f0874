package controller

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

var fuzzPhases = []v1alpha1.TaskPhase{"", v1alpha1.TaskPhasePending, v1alpha1.TaskPhaseRunning, v1alpha1.TaskPhaseSucceeded, v1alpha1.TaskPhaseFailed}

var fuzzErrorKinds = []backend.ErrorKind{backend.KindTransient, backend.KindAuthentication, backend.KindNotFound, backend.KindTerminal, backend.KindInvalidConfig}

// FuzzStatusFromOutcome checks that no observation or error, on top of any stored status, breaks the contract's
// invariants or panics.
func FuzzStatusFromOutcome(f *testing.F) {
	f.Add(uint8(2), uint8(1), "processing", int32(40), []byte(`{"a":1}`), false, uint8(0), int32(0), int32(0), int64(0), int32(0))
	f.Add(uint8(0), uint8(3), "succeed", int32(-5), []byte(`"text"`), false, uint8(0), int32(2), int32(2), int64(60), int32(30))
	f.Add(uint8(2), uint8(2), "", int32(500), []byte(nil), true, uint8(2), int32(2), int32(2), int64(1), int32(1))
	f.Fuzz(func(t *testing.T, storedPhase, observedPhase uint8, vendorStatus string, progress int32, result []byte,
		failed bool, errKind uint8, errors, notFound int32, activeDeadline int64, progressDeadline int32) {
		task := &v1alpha1.AsyncTask{
			ObjectMeta: metav1.ObjectMeta{Generation: 3, CreationTimestamp: metav1.NewTime(created)},
			Status: v1alpha1.AsyncTaskStatus{
				Phase: fuzzPhases[int(storedPhase)%len(fuzzPhases)], ConsecutiveErrors: errors, ConsecutiveNotFound: notFound,
				LastProgressTime: ptr.To(metav1.NewTime(created)), VendorStatus: "old",
			},
		}
		if activeDeadline > 0 {
			task.Spec.ActiveDeadlineSeconds = &activeDeadline
		}
		if progressDeadline > 0 {
			task.Spec.ProgressDeadlineSeconds = &progressDeadline
		}
		outcome := pollOutcome{}
		if failed {
			outcome.err = backend.Errorf(fuzzErrorKinds[int(errKind)%len(fuzzErrorKinds)], "fuzzed failure %s", vendorStatus)
		} else {
			obs := backend.Observation{Phase: fuzzPhases[int(observedPhase)%len(fuzzPhases)], VendorStatus: vendorStatus, Progress: &progress}
			if json.Valid(result) {
				obs.Result = result
			}
			outcome.observation = &obs
		}
		st := statusFromOutcome(task, outcome, "", now)

		if task.Status.Phase.Finished() {
			if st.Phase != task.Status.Phase {
				t.Fatalf("finished phase %s changed to %s", task.Status.Phase, st.Phase)
			}
			return
		}
		if st.Progress != nil && (*st.Progress < 0 || *st.Progress > 100) {
			t.Fatalf("progress %d out of range", *st.Progress)
		}
		ready := condition(st.Conditions, v1alpha1.ConditionReady)
		if ready == nil || (ready.Status == metav1.ConditionTrue) != (st.Phase == v1alpha1.TaskPhaseSucceeded) {
			t.Fatalf("Ready %+v with phase %s", ready, st.Phase)
		}
		finished := condition(st.Conditions, v1alpha1.ConditionFinished)
		if (finished != nil) != st.Phase.Finished() || (condition(st.Conditions, v1alpha1.ConditionReconciling) != nil) == st.Phase.Finished() {
			t.Fatalf("Finished/Reconciling do not match phase %s: %+v", st.Phase, st.Conditions)
		}
		if st.Phase.Finished() && st.CompletionTime == nil {
			t.Fatal("finished without completionTime")
		}
		if st.Result != nil && (!json.Valid(st.Result.Raw) || len(st.Result.Raw) > maxResultBytes) {
			t.Fatal("result invalid or too large")
		}
		if st.ObservedGeneration != 3 {
			t.Fatalf("observedGeneration %d", st.ObservedGeneration)
		}
	})
}
