package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

const niVendor = "NetworkInsight"

// createNetworkInsightBackend creates a TaskBackend of type NetworkInsight at the simulator, with a Secret
// holding secretData (username + password, or token).
func createNetworkInsightBackend(t *testing.T, ns, name string, secretData map[string]string, settings *v1alpha1.NetworkInsightSettings) *v1alpha1.TaskBackend {
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
			Type:                 v1alpha1.BackendTypeNetworkInsight,
			URL:                  simURL,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: secret.Name},
			PollInterval:         &metav1.Duration{Duration: time.Second},
			NetworkInsight:       settings,
		},
	}
	if err := k8sClient.Create(ctx, b); err != nil {
		t.Fatalf("creating TaskBackend: %v", err)
	}
	return b
}

// niRequestID returns a request ID no other test uses, shaped like the ones Network Insight hands out: with
// dots.
func niRequestID(t *testing.T) string {
	return fmt.Sprintf("TASK_PROGRESS_application.APP_BULK_SAVE.%d.%s", time.Now().UnixNano(), uniqueTaskID(t)[:16])
}

func TestNetworkInsightTaskSucceedsWithEachCredentialMethod(t *testing.T) {
	cases := map[string]struct {
		secret   map[string]string
		settings *v1alpha1.NetworkInsightSettings
		login    bool
	}{
		"token login, LOCAL domain": {secret: map[string]string{"username": "sim-user", "password": "sim-password"}, login: true},
		"token login, LDAP domain": {secret: map[string]string{"username": "sim-user", "password": "sim-password"}, login: true,
			settings: &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLDAP, Domain: vendorsim.NetworkInsightLDAPDomain}},
		"fixed token": {secret: map[string]string{"token": simToken}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			loginsBefore := sim.Logins(niVendor)
			backend := createNetworkInsightBackend(t, ns, "vrni", tc.secret, tc.settings)
			id := niRequestID(t)
			sim.AddTask(id,
				vendorsim.Step{Phase: vendorsim.Running, Progress: 20},
				vendorsim.Step{Phase: vendorsim.Running, Progress: 60},
				vendorsim.Step{Phase: vendorsim.Succeeded, Result: `[
					{"entityId":"18203:565:1","name":"web","responseCode":"SUCCESS"},
					{"entityId":"18203:565:2","name":"support-app-web","responseCode":"ALREADY_SAVED_APPLICATION","errorMessage":"Application email-app is already saved."}]`},
			)
			createTask(t, ns, "save-apps", "vrni", id)

			task := waitForTask(t, ns, "save-apps", func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
			})
			st := task.Status
			g.Expect(st.VendorStatus).To(Equal("FINISHED"))
			g.Expect(st.TaskName).To(Equal("APP_BULK_SAVE"))
			g.Expect(st.Progress).To(HaveValue(BeEquivalentTo(100)))
			g.Expect(st.Message).To(Equal("1 of 2 applications failed to save: support-app-web (ALREADY_SAVED_APPLICATION): Application email-app is already saved."))
			g.Expect(st.StartTime).NotTo(BeNil())
			var result []map[string]string
			g.Expect(json.Unmarshal(st.Result.Raw, &result)).To(Succeed())
			g.Expect(result).To(HaveLen(2))
			expectCondition(g, st.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
			expectCondition(g, st.Conditions, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
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
	createNetworkInsightBackend(t, ns, "vrni", map[string]string{"username": "sim-user", "password": "sim-password"}, nil)
	id := niRequestID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running, Progress: 30},
		vendorsim.Step{Phase: vendorsim.Failed, Progress: 30, Message: "NSX manager is unreachable"},
	)
	createTask(t, ns, "save-apps", "vrni", id)

	task := waitForTask(t, ns, "save-apps", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
	})
	st := task.Status
	g.Expect(st.VendorStatus).To(Equal("FAILED"))
	g.Expect(st.Message).To(Equal("ERROR: NSX manager is unreachable"))
	expectCondition(g, st.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTaskFailed)
	expectCondition(g, st.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
	expectCondition(g, st.Conditions, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
}

func TestNetworkInsightTaskSurvivesFlakyVendor(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createNetworkInsightBackend(t, ns, "vrni", map[string]string{"username": "sim-user", "password": "sim-password"}, nil)
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

	waitForTask(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.ConsecutiveErrors).To(BeNumerically(">=", 1))
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning), "the last good observation is kept")
		g.Expect(task.Status.Progress).To(HaveValue(BeEquivalentTo(10)))
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
		g.Expect(task.Status.Message).To(ContainSubstring("HTTP 5"))
	})
	task := waitForTask(t, ns, "flaky", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
	})
	g.Expect(task.Status.ConsecutiveErrors).To(BeZero())
	g.Expect(task.Status.VendorStatus).To(Equal("FINISHED"))
}

func TestNetworkInsightWrongPasswordIsAuthenticationFailed(t *testing.T) {
	ns := newNamespace(t)
	backend := createNetworkInsightBackend(t, ns, "vrni", map[string]string{"username": "sim-user", "password": "wrong-password"}, nil)
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
