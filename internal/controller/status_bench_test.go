package controller

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// BenchmarkStatusFromOutcome measures the status computation every poll runs, and the comparison with the
// stored status that decides whether the poll writes. The common case at scale is "unchanged": a running task
// whose vendor answers what it answered last time.
func BenchmarkStatusFromOutcome(b *testing.B) {
	start := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	at := start.Add(time.Minute)
	runningAt := func(p int32) *backend.Observation {
		return &backend.Observation{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "IN_PROGRESS", Progress: ptr.To(p),
			Message: "Half way", TaskName: "APP_BULK_SAVE"}
	}
	task := &v1alpha1.AsyncTask{
		ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: "ns", Generation: 1, CreationTimestamp: metav1.NewTime(start)},
		Spec: v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: "b"}, TaskID: "x",
			ProgressDeadlineSeconds: ptr.To[int32](3600)},
	}
	// The stored status after one poll saw the task at 60%.
	task.Status = statusFromOutcome(task, pollOutcome{observation: runningAt(60)}, "", at)

	outcomes := map[string]pollOutcome{
		"unchanged":       {observation: runningAt(60)},
		"progress change": {observation: runningAt(70)},
		"succeeded": {observation: &backend.Observation{Phase: v1alpha1.TaskPhaseSucceeded, VendorStatus: "FINISHED",
			Progress: ptr.To[int32](100), Result: []byte(`[{"entityId":"18203:565:1","name":"web","responseCode":"SUCCESS"}]`)}},
		"transient error": {err: backend.Errorf(backend.KindTransient, "HTTP 503: %v", errors.New("Service Unavailable"))},
		"not polled":      {},
	}
	for name, outcome := range outcomes {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			later := at.Add(10 * time.Second)
			for b.Loop() {
				_ = statusFromOutcome(task, outcome, "", later)
			}
		})
	}
	// What writeStatus does on every poll before deciding to write.
	b.Run("unchanged, compared with the stored status", func(b *testing.B) {
		b.ReportAllocs()
		later := at.Add(10 * time.Second)
		for b.Loop() {
			st := statusFromOutcome(task, outcomes["unchanged"], "", later)
			if !statusEquality.DeepEqual(task.Status, st) {
				b.Fatal("an unchanged observation must not change the status")
			}
		}
	})
}
