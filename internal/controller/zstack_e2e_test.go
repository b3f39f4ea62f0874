package controller

import (
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// zstackLogin and zstackSessionID are the two credential sets the shared simulator accepts for ZStack.
var (
	zstackLogin     = map[string]string{"accountName": "sim-user", "password": "sim-password"}
	zstackSessionID = map[string]string{"sessionID": simToken}
)

// zstackSpec is the spec of a ZStack backend; createBackend points it at the simulator.
func zstackSpec() v1alpha1.TaskBackendSpec {
	return v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeZStack}
}

func TestZStackTaskSucceedsWithEachCredentialMethod(t *testing.T) {
	for method, creds := range map[string]map[string]string{"login": zstackLogin, "sessionID": zstackSessionID} {
		t.Run(method, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			b := createBackend(t, ns, "zstack", zstackSpec(), creds)
			waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)

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
			task := waitForPhase(t, ns, "create-vm", v1alpha1.TaskPhaseSucceeded)
			g.Eventually(phases).Should(Receive(Equal([]v1alpha1.TaskPhase{
				v1alpha1.TaskPhaseRunning, v1alpha1.TaskPhaseSucceeded})))

			st := task.Status
			g.Expect(st.VendorStatus).To(Equal("Succeeded"))
			g.Expect(st.Progress).To(HaveValue(BeEquivalentTo(100)))
			g.Expect(st.ConsecutiveErrors).To(BeZero())
			var result map[string]map[string]string
			g.Expect(json.Unmarshal(st.Result.Raw, &result)).To(Succeed())
			g.Expect(result["inventory"]).To(HaveKeyWithValue("name", "vm1"))
			expectSucceededConditions(g, st.Conditions)
		})
	}
}

func TestZStackFailedJobIsStalled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "zstack", zstackSpec(), zstackLogin)
	id := uniqueTaskID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running, Progress: 10, Message: "Allocate a host"},
		vendorsim.Step{Phase: vendorsim.Failed, Message: "no host has enough CPU"},
	)
	createTask(t, ns, "create-vm", "zstack", id)

	task := waitForPhase(t, ns, "create-vm", v1alpha1.TaskPhaseFailed)
	st := task.Status
	g.Expect(st.VendorStatus).To(Equal("Failed"))
	g.Expect(st.Message).To(Equal("SYS.1000: An internal error happened in system: no host has enough CPU"))
	var result map[string]map[string]string
	g.Expect(json.Unmarshal(st.Result.Raw, &result)).To(Succeed())
	g.Expect(result["error"]).To(HaveKeyWithValue("code", "SYS.1000"))
	expectFailedConditions(g, st.Conditions)
}

func TestZStackTaskSurvivesFlakyAnswers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "zstack", zstackSpec(), zstackLogin)
	id := uniqueTaskID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running, Progress: 40, Message: "Download the image"},
		vendorsim.Step{HTTPStatus: 500},
		vendorsim.Step{RawBody: "<html>502 Bad Gateway</html>", HTTPStatus: 502},
		vendorsim.Step{RawBody: "not json at all"},
		vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{"inventory": {"uuid": "vm-2"}}`},
	)
	createTask(t, ns, "flaky", "zstack", id)

	waitForFailedPollKeepingRunning(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Progress).To(HaveValue(BeEquivalentTo(40)))
		g.Expect(task.Status.Message).To(ContainSubstring("HTTP 5"))
	})
	task := waitForPhase(t, ns, "flaky", v1alpha1.TaskPhaseSucceeded)
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
			b := createBackend(t, ns, "zstack", zstackSpec(), creds)
			ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
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
