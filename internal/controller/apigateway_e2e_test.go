package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// apigIAMSpec is apigSpec with the simulator as the IAM endpoint too, so that every credential method works.
func apigIAMSpec() v1alpha1.TaskBackendSpec {
	spec := apigSpec()
	spec.APIGateway.IAMURL, spec.APIGateway.DomainName = simURL, "acme"
	return spec
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
			createBackend(t, ns, "apig", apigIAMSpec(), keys)
			ok, failed := uniqueTaskID(t)+"a", uniqueTaskID(t)+"b"
			sim.AddTask(ok, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Succeeded, Result: importResult})
			sim.AddTask(failed, vendorsim.Step{Phase: vendorsim.Failed, Message: "The API group name already exists"})
			createTask(t, ns, "ok", "apig", ok)
			createTask(t, ns, "failed", "apig", failed)
			waitForPhase(t, ns, "ok", v1alpha1.TaskPhaseSucceeded)
			waitForTask(t, ns, "failed", func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
				expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
			})
		})
	}
}
