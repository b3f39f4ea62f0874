package controller

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// Traffic Ops job IDs are integers; these tests use 7301xxxx so that no other test's task shares one.
func trafficOpsTaskID(n int) string { return fmt.Sprintf("7301%04d", n) }

var (
	trafficOpsPasswordSecret = map[string]string{"username": "sim-user", "password": "sim-password"}
	trafficOpsTokenSecret    = map[string]string{"token": simToken}
)

// trafficOpsSpec is the spec of a Traffic Ops backend; createBackend points it at the simulator.
func trafficOpsSpec() v1alpha1.TaskBackendSpec {
	return v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps, TrafficOps: &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"}}
}

func TestTrafficOpsJobSucceedsWithEitherLogin(t *testing.T) {
	cases := map[string]struct {
		secret map[string]string
		id     string
	}{
		"cookie login with username and password": {secret: trafficOpsPasswordSecret, id: trafficOpsTaskID(1)},
		"token login": {secret: trafficOpsTokenSecret, id: trafficOpsTaskID(2)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			b := createBackend(t, ns, "to", trafficOpsSpec(), tc.secret)
			waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
			sim.AddTask(tc.id,
				vendorsim.Step{Phase: vendorsim.Pending},
				vendorsim.Step{Phase: vendorsim.Running},
				vendorsim.Step{Phase: vendorsim.Succeeded, Message: "ACME renewal complete."},
			)
			createTask(t, ns, "renew", "to", tc.id)

			waitForTask(t, ns, "renew", func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
				g.Expect(task.Status.VendorStatus).To(Equal("PENDING"))
			})
			task := waitForPhase(t, ns, "renew", v1alpha1.TaskPhaseSucceeded)
			st := task.Status
			g.Expect(st.VendorStatus).To(Equal("SUCCEEDED"))
			g.Expect(st.Message).To(Equal("ACME renewal complete."))
			g.Expect(st.Progress).To(HaveValue(BeEquivalentTo(100)))
			g.Expect(st.StartTime).NotTo(BeNil())
			g.Expect(st.CompletionTime).NotTo(BeNil())
			g.Expect(st.ConsecutiveErrors).To(BeZero())
			expectSucceededConditions(g, st.Conditions)
		})
	}
}

func TestTrafficOpsFailedJobIsStalled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "to", trafficOpsSpec(), trafficOpsPasswordSecret)
	id := trafficOpsTaskID(3)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{Phase: vendorsim.Failed, Message: "ACME renewal failed: too many certificates"},
	)
	createTask(t, ns, "renew", "to", id)

	task := waitForPhase(t, ns, "renew", v1alpha1.TaskPhaseFailed)
	st := task.Status
	g.Expect(st.VendorStatus).To(Equal("FAILED"))
	g.Expect(st.Message).To(Equal("ACME renewal failed: too many certificates"))
	g.Expect(st.CompletionTime).NotTo(BeNil())
	expectFailedConditions(g, st.Conditions)
}

func TestTrafficOpsJobSurvivesFlakyAnswers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "to", trafficOpsSpec(), trafficOpsTokenSecret)
	id := trafficOpsTaskID(4)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{HTTPStatus: 500},
		vendorsim.Step{RawBody: "<html>502 Bad Gateway</html>", HTTPStatus: 502},
		vendorsim.Step{RawBody: "not json at all"},
		vendorsim.Step{Phase: vendorsim.Succeeded},
	)
	createTask(t, ns, "flaky", "to", id)

	waitForFailedPollKeepingRunning(t, ns, "flaky")
	task := waitForPhase(t, ns, "flaky", v1alpha1.TaskPhaseSucceeded)
	g.Expect(task.Status.ConsecutiveErrors).To(BeZero())
	g.Expect(sim.Polls(id)).To(Equal(5), "every answer was seen once, none after success")
}

func TestTrafficOpsWrongPasswordIsAuthenticationFailed(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	b := createBackend(t, ns, "to", trafficOpsSpec(), map[string]string{"username": "sim-user", "password": "not-the-password"})
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	g.Expect(ready.Message).To(ContainSubstring("Invalid username or password."))
	g.Expect(ready.Message).NotTo(ContainSubstring("not-the-password"))

	id := trafficOpsTaskID(5)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Succeeded})
	createTask(t, ns, "renew", "to", id)
	task := waitForTask(t, ns, "renew", func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	})
	g.Expect(task.Status.Message).NotTo(ContainSubstring("not-the-password"))
	g.Expect(sim.Polls(id)).To(BeZero())
}

func TestTrafficOpsNonIntegerTaskIDFails(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "to", trafficOpsSpec(), trafficOpsTokenSecret)
	createTask(t, ns, "bad-id", "to", "renewal-7301")

	task := waitForPhase(t, ns, "bad-id", v1alpha1.TaskPhaseFailed)
	g.Expect(task.Status.Message).To(ContainSubstring("Traffic Ops job IDs are integers"))
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
}

func TestTrafficOpsUnknownJobFailsAsNotFound(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "to", trafficOpsSpec(), trafficOpsPasswordSecret)
	createTask(t, ns, "ghost", "to", trafficOpsTaskID(6)) // never added to the simulator

	task := waitForPhase(t, ns, "ghost", v1alpha1.TaskPhaseFailed)
	g.Expect(task.Status.Message).To(ContainSubstring("HTTP 404: Not Found"))
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskNotFound)
}
