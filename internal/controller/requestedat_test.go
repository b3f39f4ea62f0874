package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// requestPoll sets tasks.asynctask.dev/requestedAt on a task, as `kubectl asynctask repoll` does.
func requestPoll(t *testing.T, ns, name, value string) {
	t.Helper()
	patch := []byte(`{"metadata":{"annotations":{"` + v1alpha1.AnnotationRequestedAt + `":"` + value + `"}}}`)
	task := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8sClient.Patch(context.Background(), task, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("setting requestedAt: %v", err)
	}
}

func TestRequestedAtPollsARunningTaskOnceAtOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// An hour between polls: only the requests can cause the polls after the first.
	createBackend(t, ns, "vrni", withPollInterval(networkInsightSpec(nil), time.Hour), niPasswordSecret)
	id := niRequestID(t)
	running := func(progress int) vendorsim.Step { return vendorsim.Step{Phase: vendorsim.Running, Progress: progress} }
	sim.AddTask(id, running(10), running(40), running(70))
	createTask(t, ns, "long", "vrni", id)
	waitForTask(t, ns, "long", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Progress).To(HaveValue(BeEquivalentTo(10)))
	})
	g.Expect(sim.Polls(id)).To(Equal(1))

	first := time.Now().UTC().Format(time.RFC3339Nano)
	requestPoll(t, ns, "long", first)
	task := waitForTask(t, ns, "long", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.LastHandledRequestedAt).To(Equal(first))
	})
	g.Expect(task.Status.Progress).To(HaveValue(BeEquivalentTo(40)), "the handled value comes with the poll's result")
	g.Expect(sim.Polls(id)).To(Equal(2), "one request, one poll")

	// The same answer again still records the value handled, so that a client waiting for it returns.
	sim.AddTask(id, running(40))
	second := first + "-again"
	requestPoll(t, ns, "long", second)
	task = waitForTask(t, ns, "long", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.LastHandledRequestedAt).To(Equal(second))
	})
	g.Expect(task.Status.Progress).To(HaveValue(BeEquivalentTo(40)))
	g.Expect(sim.Polls(id)).To(Equal(1), "one poll since the script was replaced")
}

func TestRequestedAtDoesNotPollAFinishedTask(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", withPollInterval(apigSpec(), time.Hour), apigToken(simToken))
	done, running := uniqueTaskID(t)+"d", uniqueTaskID(t)+"r"
	sim.AddTask(done, simSucceeded())
	sim.AddTask(running, vendorsim.Step{Phase: vendorsim.Running})
	createTask(t, ns, "done", "apig", done)
	createTask(t, ns, "running", "apig", running)
	waitForPhase(t, ns, "done", v1alpha1.TaskPhaseSucceeded)
	waitForPhase(t, ns, "running", v1alpha1.TaskPhaseRunning)

	value := time.Now().UTC().Format(time.RFC3339Nano)
	requestPoll(t, ns, "done", value)
	// The request on the running task, made after, is handled; by then the finished task's request has reached
	// the operator too.
	requestPoll(t, ns, "running", value)
	waitForTask(t, ns, "running", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.LastHandledRequestedAt).To(Equal(value))
	})
	g.Expect(sim.Polls(done)).To(Equal(1), "a finished task is never polled again")
	g.Expect(getTask(g, ns, "done").Status.LastHandledRequestedAt).To(BeEmpty(), "a finished task's status is final")
}

func TestPollRequestedOnlyForANewValueThatStatusCanHold(t *testing.T) {
	now := time.Now()
	task := func(annotation, handled string) *v1alpha1.AsyncTask {
		return &v1alpha1.AsyncTask{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{v1alpha1.AnnotationRequestedAt: annotation}},
			Status:     v1alpha1.AsyncTaskStatus{LastHandledRequestedAt: handled},
		}
	}
	longest := strings.Repeat("x", maxRequestedAtLength)
	for name, tc := range map[string]struct {
		task *v1alpha1.AsyncTask
		want string
	}{
		"new value":            {task("2026-12-04T12:00:00Z", ""), "2026-12-04T12:00:00Z"},
		"changed value":        {task("b", "a"), "b"},
		"handled value":        {task("a", "a"), ""},
		"no annotation":        {&v1alpha1.AsyncTask{}, ""},
		"longest status holds": {task(longest, ""), longest},
		"too long for status":  {task(longest+"x", ""), ""},
	} {
		if got := pollRequested(context.Background(), tc.task, now); got != tc.want {
			t.Errorf("%s: pollRequested = %.20q, want %.20q", name, got, tc.want)
		}
	}
}

// withPollInterval returns spec with its poll interval set.
func withPollInterval(spec v1alpha1.TaskBackendSpec, d time.Duration) v1alpha1.TaskBackendSpec {
	spec.PollInterval = &metav1.Duration{Duration: d}
	return spec
}
