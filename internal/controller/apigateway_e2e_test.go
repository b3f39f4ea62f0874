package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// createAPIGatewayBackendWith creates an APIGateway TaskBackend at the simulator whose Secret holds keys.
func createAPIGatewayBackendWith(t *testing.T, ns, name string, keys map[string]string) {
	t.Helper()
	ctx := context.Background()
	g := NewWithT(t)
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-creds"}, StringData: keys,
	})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &v1alpha1.TaskBackend{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.TaskBackendSpec{
			Type: v1alpha1.BackendTypeAPIGateway, URL: simURL,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: name + "-creds"},
			PollInterval:         &metav1.Duration{Duration: time.Second},
			APIGateway:           &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1", IAMURL: simURL, DomainName: "acme"},
		},
	})).To(Succeed())
}

func TestAPIGatewayEveryCredentialMethodTracksTasks(t *testing.T) {
	methods := map[string]map[string]string{
		"token":    {"token": simToken},
		"password": {"username": "sim-user", "password": "sim-password"},
		"aksk":     {"accessKey": "sim-ak", "secretKey": "sim-sk"},
	}
	for method, keys := range methods {
		t.Run(method, func(t *testing.T) {
			ns := newNamespace(t)
			createAPIGatewayBackendWith(t, ns, "apig", keys)
			ok, failed := uniqueTaskID(t)+"a", uniqueTaskID(t)+"b"
			sim.AddTask(ok, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Succeeded, Result: importResult})
			sim.AddTask(failed, vendorsim.Step{Phase: vendorsim.Failed, Message: "The API group name already exists"})
			createTask(t, ns, "ok", "apig", ok)
			createTask(t, ns, "failed", "apig", failed)
			waitForTask(t, ns, "ok", func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
			})
			waitForTask(t, ns, "failed", func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
				expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
			})
		})
	}
}
