package cli

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// The harness itself: a task on each backend is polled by the operator running in this process.
func TestHarnessPollsTasks(t *testing.T) {
	ns := newNamespace(t)
	vrni := newTask(t, ns, "vrni-task", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 40})
	to := newTask(t, ns, "to-task", "to", vendorsim.Step{Phase: vendorsim.Succeeded})
	waitFor(t, vrni, func(task *v1alpha1.AsyncTask) bool {
		return task.Status.Progress != nil && *task.Status.Progress == 40
	})
	waitFor(t, to, func(task *v1alpha1.AsyncTask) bool { return task.Status.Phase == v1alpha1.TaskPhaseSucceeded })
}

// waitFor polls the task (bounded) until ok holds.
func waitFor(t *testing.T, task *v1alpha1.AsyncTask, ok func(*v1alpha1.AsyncTask) bool) *v1alpha1.AsyncTask {
	t.Helper()
	got := &v1alpha1.AsyncTask{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(task), got); err == nil && ok(got) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("task %s: condition not met within 30s; status %+v", task.Name, got.Status)
	return nil
}
