package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// finishedName is the name and the vendor task ID of finished task j (-finished): the simulator knows no
// such ID, so any request for one shows in the counter (counter.finishedRequests).
func finishedName(j int) string { return fmt.Sprintf("%s%06d", finishedIDPrefix, j) }

// finishedStatus is the status the operator writes when a task of vendor v succeeds (statusFromOutcome and
// setConditions in internal/controller/status.go): phase, the vendor's status word, progress 100, the
// vendor's message, task name and times, observedGeneration, and Ready and Finished True with reason
// Succeeded and the message. Reconciling and Stalled are removed when a task succeeds, so it has neither.
func finishedStatus(j, v int, generation int64, completed time.Time) v1alpha1.AsyncTaskStatus {
	words := [numVendors]string{vAPIG: "succeed", vNI: "FINISHED", vTO: "SUCCEEDED", vZS: "Succeeded"}
	names := [numVendors]string{vAPIG: "import_api", vNI: "APP_BULK_SAVE", vTO: "ChangeLogCleanup", vZS: "APICreateVmInstanceMsg"}
	messages := [numVendors]string{vAPIG: "Imported 12 APIs", vNI: "Saved 40 applications",
		vTO: "Async job completed.", vZS: "Created VM instance bench-vm"}
	done := metav1.NewTime(completed.Truncate(time.Second))
	start := metav1.NewTime(done.Add(-7 * time.Minute))
	message := messages[v]
	// About 100 bytes of result, as a small vendor answer is.
	result := fmt.Sprintf(`{"id":%q,"status":"ok","items":[{"name":"item-%04d","uuid":"%032x"}],"count":1}`,
		finishedName(j), j%10000, j)
	condition := func(t string) metav1.Condition {
		return metav1.Condition{Type: t, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded, Message: message,
			ObservedGeneration: generation, LastTransitionTime: done}
	}
	return v1alpha1.AsyncTaskStatus{
		Phase:              v1alpha1.TaskPhaseSucceeded,
		VendorStatus:       words[v],
		Progress:           ptr.To[int32](100),
		Message:            message,
		TaskName:           names[v],
		Result:             &v1alpha1.JSON{Raw: []byte(result)},
		StartTime:          &start,
		CompletionTime:     &done,
		LastProgressTime:   &done,
		ObservedGeneration: generation,
		Conditions:         []metav1.Condition{condition(v1alpha1.ConditionReady), condition(v1alpha1.ConditionFinished)},
	}
}

// createFinished creates cfg.finished AsyncTasks spread evenly over the four backends and writes each one's
// status (the status subresource) as the operator writes a task that succeeded, an hour ago and more. No
// ttlSecondsAfterFinished: they stay, as history does on clusters that set none. Setup, not measured.
func createFinished(ctx context.Context, c client.Client, cfg config) error {
	workers := 3 * cfg.createWorkers
	n := cfg.finished
	now := time.Now()
	started := now
	var created atomic.Int64
	return forEach(ctx, n, workers, func(ctx context.Context, j int) error {
		v := j % numVendors
		task := &v1alpha1.AsyncTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: finishedName(j)},
			Spec:       v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: backendName(v)}, TaskID: finishedName(j)},
		}
		if err := c.Create(ctx, task); err != nil {
			return fmt.Errorf("creating finished task %d: %w", j, err)
		}
		// Finished between one and two hours ago, spread.
		completed := now.Add(-time.Hour - time.Duration(j%3600)*time.Second)
		task.Status = finishedStatus(j, v, task.Generation, completed)
		if err := c.Status().Update(ctx, task); err != nil {
			return fmt.Errorf("writing the status of finished task %d: %w", j, err)
		}
		if k := created.Add(1); k%10000 == 0 && int(k) < n {
			logf("  %d of %d finished tasks created (%s)", k, n, time.Since(started).Round(time.Second))
		}
		return nil
	})
}
