package controller

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// zstackLogin and zstackSessionID are the two credential sets the shared simulator accepts for ZStack.
var (
	zstackLogin     = map[string]string{"accountName": "sim-user", "password": "sim-password"}
	zstackSessionID = map[string]string{"sessionID": simToken}
)

// createZStackBackend creates a TaskBackend of type ZStack at the simulator, with a Secret holding creds.
func createZStackBackend(t *testing.T, ns, name string, creds map[string]string) *v1alpha1.TaskBackend {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-creds"},
		StringData: creds,
	}
	if err := k8sClient.Create(ctx, secret); err != nil {
		t.Fatalf("creating Secret: %v", err)
	}
	b := &v1alpha1.TaskBackend{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.TaskBackendSpec{
			Type:                 v1alpha1.BackendTypeZStack,
			URL:                  simURL,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: secret.Name},
			PollInterval:         &metav1.Duration{Duration: time.Second},
		},
	}
	if err := k8sClient.Create(ctx, b); err != nil {
		t.Fatalf("creating TaskBackend: %v", err)
	}
	return b
}

// waitForZStackBackendReady waits for the TaskBackend's Ready condition to have the given status and reason.
func waitForZStackBackendReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var ready *metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		b := &v1alpha1.TaskBackend{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, b)).To(Succeed())
		expectCondition(g, b.Status.Conditions, v1alpha1.ConditionReady, status, reason)
		ready = condition(b.Status.Conditions, v1alpha1.ConditionReady)
	}, eventually, tick).Should(Succeed())
	return ready
}

func TestZStackTaskSucceedsWithEachCredentialMethod(t *testing.T) {
	for method, creds := range map[string]map[string]string{"login": zstackLogin, "sessionID": zstackSessionID} {
		t.Run(method, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			createZStackBackend(t, ns, "zstack", creds)
			waitForZStackBackendReady(t, ns, "zstack", metav1.ConditionTrue, v1alpha1.ReasonReady)

			id := uniqueTaskID(t)
			sim.AddTask(id,
				vendorsim.Step{Phase: vendorsim.Running, Progress: 30, Message: "Allocate a host"},
				vendorsim.Step{Phase: vendorsim.Running, Progress: 30, Message: "Allocate a host"},
				vendorsim.Step{Phase: vendorsim.Running, Progress: 70, Message: "Start the VM"},
				vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{"inventory": {"uuid": "b3a2c7d62c3b4d4b9d2e7d1c3d0f1a2b", "name": "vm1"}}`},
			)
			phases := watchPhases(t, ns, "create-vm")
			createTask(t, ns, "create-vm", "zstack", id)

			waitForTask(t, ns, "create-vm", func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
				g.Expect(task.Status.VendorStatus).To(Equal("Running"))
				g.Expect(task.Status.Progress).To(HaveValue(BeNumerically(">=", 30)))
				g.Expect(task.Status.TaskName).To(Equal("org.zstack.header.vm.APICreateVmInstanceMsg"))
				g.Expect(task.Status.Message).To(BeElementOf("Allocate a host", "Start the VM"))
			})
			task := waitForTask(t, ns, "create-vm", func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
			})
			g.Eventually(phases).Should(Receive(Equal([]v1alpha1.TaskPhase{
				v1alpha1.TaskPhaseRunning, v1alpha1.TaskPhaseSucceeded})))

			st := task.Status
			g.Expect(st.VendorStatus).To(Equal("Succeeded"))
			g.Expect(st.Progress).To(HaveValue(BeEquivalentTo(100)))
			g.Expect(st.ConsecutiveErrors).To(BeZero())
			var result map[string]map[string]string
			g.Expect(json.Unmarshal(st.Result.Raw, &result)).To(Succeed())
			g.Expect(result["inventory"]).To(HaveKeyWithValue("name", "vm1"))
			expectCondition(g, st.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
			expectCondition(g, st.Conditions, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
		})
	}
}

func TestZStackFailedJobIsStalled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createZStackBackend(t, ns, "zstack", zstackLogin)
	id := uniqueTaskID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running, Progress: 10, Message: "Allocate a host"},
		vendorsim.Step{Phase: vendorsim.Failed, Message: "no host has enough CPU"},
	)
	createTask(t, ns, "create-vm", "zstack", id)

	task := waitForTask(t, ns, "create-vm", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
	})
	st := task.Status
	g.Expect(st.VendorStatus).To(Equal("Failed"))
	g.Expect(st.Message).To(Equal("SYS.1000: An internal error happened in system: no host has enough CPU"))
	var result map[string]map[string]string
	g.Expect(json.Unmarshal(st.Result.Raw, &result)).To(Succeed())
	g.Expect(result["error"]).To(HaveKeyWithValue("code", "SYS.1000"))
	expectCondition(g, st.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTaskFailed)
	expectCondition(g, st.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
	expectCondition(g, st.Conditions, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
}

func TestZStackTaskSurvivesFlakyAnswers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createZStackBackend(t, ns, "zstack", zstackLogin)
	id := uniqueTaskID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running, Progress: 40, Message: "Download the image"},
		vendorsim.Step{HTTPStatus: 500},
		vendorsim.Step{RawBody: "<html>502 Bad Gateway</html>", HTTPStatus: 502},
		vendorsim.Step{RawBody: "not json at all"},
		vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{"inventory": {"uuid": "vm-2"}}`},
	)
	createTask(t, ns, "flaky", "zstack", id)

	waitForTask(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.ConsecutiveErrors).To(BeNumerically(">=", 1))
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning), "the last good observation is kept")
		g.Expect(task.Status.Progress).To(HaveValue(BeEquivalentTo(40)))
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
		g.Expect(task.Status.Message).To(ContainSubstring("HTTP 5"))
	})
	task := waitForTask(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
	})
	g.Expect(task.Status.ConsecutiveErrors).To(BeZero())
	g.Expect(sim.Polls(id)).To(Equal(5), "one api-jobs request per poll, no poll after the end")
}

func TestZStackRefusedCredentialsMakeTheBackendNotReady(t *testing.T) {
	for method, creds := range map[string]map[string]string{
		"wrong password":  {"accountName": "sim-user", "password": "not-the-password"},
		"stale sessionID": {"sessionID": "stale-session-uuid"},
	} {
		t.Run(method, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			createZStackBackend(t, ns, "zstack", creds)
			ready := waitForZStackBackendReady(t, ns, "zstack", metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
			g.Expect(ready.Message).To(ContainSubstring("ZStack refused"))
			for _, secret := range creds {
				if secret != "sim-user" {
					g.Expect(ready.Message).NotTo(ContainSubstring(secret))
				}
			}

			id := uniqueTaskID(t)
			sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Succeeded})
			createTask(t, ns, "refused", "zstack", id)
			waitForTask(t, ns, "refused", func(g Gomega, task *v1alpha1.AsyncTask) {
				expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
				g.Expect(task.Status.Phase).NotTo(Equal(v1alpha1.TaskPhaseFailed))
			})
			g.Expect(sim.Polls(id)).To(BeZero())
		})
	}
}
