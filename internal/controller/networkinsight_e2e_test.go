package controller

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

const niVendor = "NetworkInsight"

// networkInsightSpec is the spec of a Network Insight backend with settings; createBackend points it at the
// simulator.
func networkInsightSpec(settings *v1alpha1.NetworkInsightSettings) v1alpha1.TaskBackendSpec {
	return v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight, NetworkInsight: settings}
}

// niPasswordSecret is the Secret data of a Network Insight backend that logs in with the simulator's username
// and password.
var niPasswordSecret = map[string]string{"username": "sim-user", "password": "sim-password"}

// niRequestID returns a request ID no other test uses, shaped like the ones Network Insight hands out: with
// dots.
func niRequestID(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("TASK_PROGRESS_application.APP_BULK_SAVE.%d.%s", time.Now().UnixNano(), uniqueTaskID(t)[:16])
}

func TestNetworkInsightTaskSucceedsWithEachCredentialMethod(t *testing.T) {
	cases := map[string]struct {
		secret   map[string]string
		settings *v1alpha1.NetworkInsightSettings
		login    bool
	}{
		"token login, LOCAL domain": {secret: niPasswordSecret, login: true},
		"token login, LDAP domain": {secret: niPasswordSecret, login: true,
			settings: &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLDAP, Domain: vendorsim.NetworkInsightLDAPDomain}},
		"fixed token": {secret: map[string]string{"token": simToken}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			loginsBefore := sim.Logins(niVendor)
			backend := createBackend(t, ns, "vrni", networkInsightSpec(tc.settings), tc.secret)
			id := niRequestID(t)
			sim.AddTask(id,
				vendorsim.Step{Phase: vendorsim.Running, Progress: 20},
				vendorsim.Step{Phase: vendorsim.Running, Progress: 60},
				vendorsim.Step{Phase: vendorsim.Succeeded, Result: `[
					{"entityId":"18203:565:1","name":"web","responseCode":"SUCCESS"},
					{"entityId":"18203:565:2","name":"support-app-web","responseCode":"ALREADY_SAVED_APPLICATION","errorMessage":"Application email-app is already saved."}]`},
			)
			createTask(t, ns, "save-apps", "vrni", id)

			task := waitForPhase(t, ns, "save-apps", v1alpha1.TaskPhaseSucceeded)
			st := task.Status
			g.Expect(st.VendorStatus).To(Equal("FINISHED"))
			g.Expect(st.TaskName).To(Equal("APP_BULK_SAVE"))
			g.Expect(st.Progress).To(HaveValue(BeEquivalentTo(100)))
			g.Expect(st.Message).To(Equal("1 of 2 applications failed to save: support-app-web (ALREADY_SAVED_APPLICATION): Application email-app is already saved."))
			g.Expect(st.StartTime).NotTo(BeNil())
			var result []map[string]string
			g.Expect(json.Unmarshal(st.Result.Raw, &result)).To(Succeed())
			g.Expect(result).To(HaveLen(2))
			expectSucceededConditions(g, st.Conditions)
			waitForBackendReady(t, backend, metav1.ConditionTrue, v1alpha1.ReasonReady)

			if tc.login {
				// One backend, one session: the Ready check and every poll share a single login.
				g.Expect(sim.Logins(niVendor) - loginsBefore).To(Equal(1))
			} else {
				g.Expect(sim.Logins(niVendor)).To(Equal(loginsBefore))
			}
		})
	}
}

func TestNetworkInsightFailedTaskIsStalled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "vrni", networkInsightSpec(nil), niPasswordSecret)
	id := niRequestID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running, Progress: 30},
		vendorsim.Step{Phase: vendorsim.Failed, Progress: 30, Message: "NSX manager is unreachable"},
	)
	createTask(t, ns, "save-apps", "vrni", id)

	task := waitForPhase(t, ns, "save-apps", v1alpha1.TaskPhaseFailed)
	st := task.Status
	g.Expect(st.VendorStatus).To(Equal("FAILED"))
	g.Expect(st.Message).To(Equal("ERROR: NSX manager is unreachable"))
	expectFailedConditions(g, st.Conditions)
}

func TestNetworkInsightTaskSurvivesFlakyVendor(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "vrni", networkInsightSpec(nil), niPasswordSecret)
	id := niRequestID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running, Progress: 10},
		vendorsim.Step{HTTPStatus: 500},
		vendorsim.Step{RawBody: "<html>502 Bad Gateway</html>", HTTPStatus: 502},
		vendorsim.Step{RawBody: "not json at all"},
		vendorsim.Step{Phase: vendorsim.Running, Progress: 70},
		vendorsim.Step{Phase: vendorsim.Succeeded, Result: `[]`},
	)
	createTask(t, ns, "flaky", "vrni", id)

	waitForFailedPollKeepingRunning(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Progress).To(HaveValue(BeEquivalentTo(10)))
		g.Expect(task.Status.Message).To(ContainSubstring("HTTP 5"))
	})
	task := waitForPhase(t, ns, "flaky", v1alpha1.TaskPhaseSucceeded)
	g.Expect(task.Status.ConsecutiveErrors).To(BeZero())
	g.Expect(task.Status.VendorStatus).To(Equal("FINISHED"))
}

func TestNetworkInsightWrongPasswordIsAuthenticationFailed(t *testing.T) {
	ns := newNamespace(t)
	backend := createBackend(t, ns, "vrni", networkInsightSpec(nil), map[string]string{"username": "sim-user", "password": "wrong-password"})
	id := niRequestID(t)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running})
	createTask(t, ns, "save-apps", "vrni", id)

	task := waitForTask(t, ns, "save-apps", func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	})
	g := NewWithT(t)
	g.Expect(task.Status.Message).To(ContainSubstring("Network Insight refused the login (HTTP 401)"))
	g.Expect(task.Status.Message).NotTo(ContainSubstring("wrong-password"))
	g.Expect(sim.Polls(id)).To(BeZero())
	ready := waitForBackendReady(t, backend, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	g.Expect(ready.Message).To(ContainSubstring("Network Insight refused the login (HTTP 401)"))
}
