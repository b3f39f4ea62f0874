package controller

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

const importResult = `{"success":[{"id":"ee93ce6815f04896b301452982b92222","action":"create","method":"GET","path":"/test1"}],"failure":[],"swagger":{"id":"de1852ab6c5e4090b0bd88a02058e650","result":"Success"},"group_id":"9100ae30705947cc9543d37cd7fb388c"}`

func TestTaskGoesPendingRunningSucceeded(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Pending},
		vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{Phase: vendorsim.Succeeded, Result: importResult},
	)

	phases := watchPhases(t, ns, "import")
	createTask(t, ns, "import", "apig", id)

	task := waitForPhase(t, ns, "import", v1alpha1.TaskPhaseSucceeded)
	g.Eventually(phases).Should(Receive(Equal([]v1alpha1.TaskPhase{
		v1alpha1.TaskPhasePending, v1alpha1.TaskPhaseRunning, v1alpha1.TaskPhaseSucceeded})))

	st := task.Status
	g.Expect(st.VendorStatus).To(Equal("succeed"))
	g.Expect(st.TaskName).To(Equal("import_api"))
	g.Expect(st.Progress).To(HaveValue(BeEquivalentTo(100)))
	g.Expect(st.Message).To(Equal("Imported 1 APIs"))
	g.Expect(st.ObservedGeneration).To(Equal(task.Generation))
	g.Expect(st.StartTime).NotTo(BeNil())
	g.Expect(st.CompletionTime).NotTo(BeNil())
	g.Expect(st.ConsecutiveErrors).To(BeZero())
	var result map[string]any
	g.Expect(json.Unmarshal(st.Result.Raw, &result)).To(Succeed())
	g.Expect(result).To(HaveKeyWithValue("group_id", "9100ae30705947cc9543d37cd7fb388c"))

	expectSucceededConditions(g, st.Conditions)
	g.Expect(condition(st.Conditions, v1alpha1.ConditionReconciling)).To(BeNil())
	g.Expect(condition(st.Conditions, v1alpha1.ConditionStalled)).To(BeNil())
}

func TestFailedTaskIsStalled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{Phase: vendorsim.Failed, Message: "The API group name already exists"},
	)
	createTask(t, ns, "import", "apig", id)

	task := waitForPhase(t, ns, "import", v1alpha1.TaskPhaseFailed)
	st := task.Status
	g.Expect(st.Message).To(Equal("APIG.3201: The API group name already exists"))
	g.Expect(st.VendorStatus).To(Equal("failed"))
	expectFailedConditions(g, st.Conditions)
	g.Expect(condition(st.Conditions, v1alpha1.ConditionReconciling)).To(BeNil())
}

func TestFinishedTaskIsNeverPolledAgain(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	backend := createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{}`})
	createTask(t, ns, "done", "apig", id)
	waitForPhase(t, ns, "done", v1alpha1.TaskPhaseSucceeded)
	polls := sim.Polls(id)

	// A change to the backend wakes its tasks; a finished one must stay asleep.
	before := backend.DeepCopy()
	backend.Spec.PollInterval = &metav1.Duration{Duration: 2 * time.Second}
	g.Expect(k8sClient.Patch(context.Background(), backend, client.MergeFrom(before))).To(Succeed())
	g.Consistently(func() int { return sim.Polls(id) }, 4*time.Second, tick).Should(Equal(polls))
}

func TestUnchangedPollWritesNoStatus(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running})
	createTask(t, ns, "steady", "apig", id)
	task := waitForPhase(t, ns, "steady", v1alpha1.TaskPhaseRunning)

	writes := countWrites(t, task)
	pollsBefore := sim.Polls(id)
	g.Eventually(func() int { return sim.Polls(id) }, eventually, tick).Should(BeNumerically(">=", pollsBefore+3))
	g.Expect(writes()).To(BeZero(), "status writes while the vendor said the same thing")
}

func TestTaskSurvivesFlakyVendor(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{HTTPStatus: 500},
		vendorsim.Step{RawBody: "<html>502 Bad Gateway</html>", HTTPStatus: 502},
		vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{"ok":true}`},
	)
	createTask(t, ns, "flaky", "apig", id)

	waitForFailedPollKeepingRunning(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Message).To(ContainSubstring("HTTP 5"))
	})
	task := waitForPhase(t, ns, "flaky", v1alpha1.TaskPhaseSucceeded)
	g.Expect(task.Status.ConsecutiveErrors).To(BeZero())
}

func TestUnknownTaskFailsAfterThreeNotFound(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	createTask(t, ns, "ghost", "apig", uniqueTaskID(t)) // never added to the simulator

	task := waitForPhase(t, ns, "ghost", v1alpha1.TaskPhaseFailed)
	g.Expect(task.Status.ConsecutiveNotFound).To(BeEquivalentTo(3))
	g.Expect(task.Status.Message).To(ContainSubstring("APIG.3093"))
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskNotFound)
}

func TestMissingBackendIsRetriedWhenItAppears(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	id := uniqueTaskID(t)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{}`})
	createTask(t, ns, "early", "late", id)
	waitForTask(t, ns, "early", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhasePending))
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendNotFound)
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonBackendNotFound)
	})

	createBackend(t, ns, "late", apigSpec(), apigToken(simToken))
	task := waitForPhase(t, ns, "early", v1alpha1.TaskPhaseSucceeded)
	g.Expect(task.Status.ConsecutiveErrors).To(BeZero())
}

func TestNewTaskReadsAsNotYetObserved(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// No backend: the operator writes a status soon, so read the object as the create call returned it.
	task := createTask(t, ns, "fresh", "none", "abc")
	g.Expect(task.Status.ObservedGeneration).To(BeEquivalentTo(-1))
}

// simSucceeded is a step of a task that succeeded with an empty result.
func simSucceeded() vendorsim.Step {
	return vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{}`}
}

// watchPhases watches one task and sends the distinct phases it went through once it is finished.
func watchPhases(t *testing.T, ns, name string) <-chan []v1alpha1.TaskPhase {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	t.Cleanup(cancel)
	w, err := k8sClient.Watch(ctx, &v1alpha1.AsyncTaskList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatalf("watching tasks: %v", err)
	}
	out := make(chan []v1alpha1.TaskPhase, 1)
	go func() {
		defer w.Stop()
		var phases []v1alpha1.TaskPhase
		for ev := range w.ResultChan() {
			task, ok := ev.Object.(*v1alpha1.AsyncTask)
			if !ok || task.Name != name || task.Status.Phase == "" {
				continue
			}
			if len(phases) == 0 || phases[len(phases)-1] != task.Status.Phase {
				phases = append(phases, task.Status.Phase)
			}
			if task.Status.Phase.Finished() {
				out <- phases
				return
			}
		}
	}()
	return out
}

// countWrites watches a task from its current resourceVersion and returns a function that reports how many
// changes the API server has accepted since.
func countWrites(t *testing.T, task *v1alpha1.AsyncTask) func() int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := k8sClient.Watch(ctx, &v1alpha1.AsyncTaskList{}, client.InNamespace(task.Namespace),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: task.ResourceVersion}})
	if err != nil {
		t.Fatalf("watching tasks: %v", err)
	}
	t.Cleanup(w.Stop)
	return func() int {
		n := 0
		for {
			select {
			case ev := <-w.ResultChan():
				if ev.Type == watch.Modified {
					n++
				}
			default:
				return n
			}
		}
	}
}
