package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// Traffic Ops job IDs are integers; these tests use 7301xxxx so that no other test's task shares one.
func trafficOpsTaskID(n int) string { return fmt.Sprintf("7301%04d", n) }

var (
	trafficOpsPasswordSecret = map[string]string{"username": "sim-user", "password": "sim-password"}
	trafficOpsTokenSecret    = map[string]string{"token": simToken}
)

// createTrafficOpsBackend creates a TaskBackend of type TrafficOps at the simulator with a Secret of the given
// keys, and waits until the operator has checked it.
func createTrafficOpsBackend(t *testing.T, ns, name string, secretData map[string]string) *v1alpha1.TaskBackend {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-creds"},
		StringData: secretData,
	}
	if err := k8sClient.Create(ctx, secret); err != nil {
		t.Fatalf("creating Secret: %v", err)
	}
	b := &v1alpha1.TaskBackend{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.TaskBackendSpec{
			Type:                 v1alpha1.BackendTypeTrafficOps,
			URL:                  simURL,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: secret.Name},
			PollInterval:         &metav1.Duration{Duration: time.Second},
			TrafficOps:           &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"},
		},
	}
	if err := k8sClient.Create(ctx, b); err != nil {
		t.Fatalf("creating TaskBackend: %v", err)
	}
	return b
}

// waitForTrafficOpsBackendReady waits for the backend's Ready condition to have the given status and reason.
func waitForTrafficOpsBackendReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var ready *metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		b := &v1alpha1.TaskBackend{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, b)).To(Succeed())
		ready = condition(b.Status.Conditions, v1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(status))
		g.Expect(ready.Reason).To(Equal(reason))
	}, eventually, tick).Should(Succeed())
	return ready
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
			createTrafficOpsBackend(t, ns, "to", tc.secret)
			waitForTrafficOpsBackendReady(t, ns, "to", metav1.ConditionTrue, v1alpha1.ReasonReady)
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
			task := waitForTask(t, ns, "renew", func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
			})
			st := task.Status
			g.Expect(st.VendorStatus).To(Equal("SUCCEEDED"))
			g.Expect(st.Message).To(Equal("ACME renewal complete."))
			g.Expect(st.Progress).To(HaveValue(BeEquivalentTo(100)))
			g.Expect(st.StartTime).NotTo(BeNil())
			g.Expect(st.CompletionTime).NotTo(BeNil())
			g.Expect(st.ConsecutiveErrors).To(BeZero())
			expectCondition(g, st.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
			expectCondition(g, st.Conditions, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
		})
	}
}

func TestTrafficOpsFailedJobIsStalled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createTrafficOpsBackend(t, ns, "to", trafficOpsPasswordSecret)
	id := trafficOpsTaskID(3)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{Phase: vendorsim.Failed, Message: "ACME renewal failed: too many certificates"},
	)
	createTask(t, ns, "renew", "to", id)

	task := waitForTask(t, ns, "renew", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
	})
	st := task.Status
	g.Expect(st.VendorStatus).To(Equal("FAILED"))
	g.Expect(st.Message).To(Equal("ACME renewal failed: too many certificates"))
	g.Expect(st.CompletionTime).NotTo(BeNil())
	expectCondition(g, st.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTaskFailed)
	expectCondition(g, st.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
	expectCondition(g, st.Conditions, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
}

func TestTrafficOpsJobSurvivesFlakyAnswers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createTrafficOpsBackend(t, ns, "to", trafficOpsTokenSecret)
	id := trafficOpsTaskID(4)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{HTTPStatus: 500},
		vendorsim.Step{RawBody: "<html>502 Bad Gateway</html>", HTTPStatus: 502},
		vendorsim.Step{RawBody: "not json at all"},
		vendorsim.Step{Phase: vendorsim.Succeeded},
	)
	createTask(t, ns, "flaky", "to", id)

	waitForTask(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.ConsecutiveErrors).To(BeNumerically(">=", 1))
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning), "the last good observation is kept")
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
	})
	task := waitForTask(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
	})
	g.Expect(task.Status.ConsecutiveErrors).To(BeZero())
	g.Expect(sim.Polls(id)).To(Equal(5), "every answer was seen once, none after success")
}

func TestTrafficOpsWrongPasswordIsAuthenticationFailed(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createTrafficOpsBackend(t, ns, "to", map[string]string{"username": "sim-user", "password": "not-the-password"})
	ready := waitForTrafficOpsBackendReady(t, ns, "to", metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
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
	createTrafficOpsBackend(t, ns, "to", trafficOpsTokenSecret)
	createTask(t, ns, "bad-id", "to", "renewal-7301")

	task := waitForTask(t, ns, "bad-id", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
	})
	g.Expect(task.Status.Message).To(ContainSubstring("Traffic Ops job IDs are integers"))
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
}

func TestTrafficOpsUnknownJobFailsAsNotFound(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createTrafficOpsBackend(t, ns, "to", trafficOpsPasswordSecret)
	createTask(t, ns, "ghost", "to", trafficOpsTaskID(6)) // never added to the simulator

	task := waitForTask(t, ns, "ghost", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
	})
	g.Expect(task.Status.Message).To(ContainSubstring("HTTP 404: Not Found"))
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskNotFound)
}
