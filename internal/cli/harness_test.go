package cli

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
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
	eventually(t, func() bool {
		return k8s.Get(context.Background(), client.ObjectKeyFromObject(task), got) == nil && ok(got)
	}, func() string { return fmt.Sprintf("task %s: condition not met; status %+v", task.Name, got.Status) })
	return got
}

// eventually polls cond until it holds, with gomega's Eventually: every 100 ms, for at most 30 s. describe
// says, on failure, what was awaited and what was seen.
func eventually(t *testing.T, cond func() bool, describe func() string) {
	t.Helper()
	NewWithT(t).Eventually(cond).WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(BeTrue(), describe)
}

var (
	buildOnce   sync.Once
	builtBinary string
	buildErr    error
)

// pluginBinary builds kubectl-asynctask once for the package's tests that run it as a process (in a terminal,
// or called by kubectl), and returns its path.
func pluginBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		builtBinary = filepath.Join(testDir, "kubectl-asynctask")
		build := exec.Command("go", "build", "-o", builtBinary, "./cmd/kubectl-asynctask")
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBinary
}
