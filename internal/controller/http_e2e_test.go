package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// httpSampleSpec is the TaskBackend spec of config/samples/<name>, as a user would apply it; createBackend
// points it at the simulator.
func httpSampleSpec(t *testing.T, name string) v1alpha1.TaskBackendSpec {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---") {
		var obj v1alpha1.TaskBackend
		if yaml.Unmarshal([]byte(doc), &obj) == nil && obj.Kind == "TaskBackend" {
			obj.Spec.URL, obj.Spec.CredentialsSecretRef = "", nil
			return obj.Spec
		}
	}
	t.Fatalf("%s holds no TaskBackend", name)
	return v1alpha1.TaskBackendSpec{}
}

func TestHTTPBackendTracksATaskToSucceeded(t *testing.T) {
	ns := newNamespace(t)
	b := createBackend(t, ns, "zstack-http", httpSampleSpec(t, "http_zstack.yaml"),
		map[string]string{"username": "sim-user", "password": "sim-password"})
	waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
	id := uniqueTaskID(t)
	sim.AddTask(id,
		vendorsim.Step{Phase: vendorsim.Running, Progress: 40, Message: "Allocating the host"},
		vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{"inventory":{"uuid":"a7f1","name":"vm1"}}`})
	createTask(t, ns, "vm", "zstack-http", id)
	task := waitForPhase(t, ns, "vm", v1alpha1.TaskPhaseSucceeded)
	g := NewWithT(t)
	expectSucceededConditions(g, task.Status.Conditions)
	g.Expect(task.Status.VendorStatus).To(Equal("Succeeded"))
	g.Expect(task.Status.Result).NotTo(BeNil())
	g.Expect(string(task.Status.Result.Raw)).To(ContainSubstring(`"vm1"`))
}

func TestHTTPBackendTaskParametersFillThePath(t *testing.T) {
	ns := newNamespace(t)
	spec := httpSampleSpec(t, "http_apigateway.yaml")
	spec.HTTP.Parameters = map[string]string{"projectID": "p1"} // instanceID comes from each task
	createBackend(t, ns, "apig-http", spec, map[string]string{"token": simToken})
	id := uniqueTaskID(t)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Failed, Message: "The API group name already exists"})
	createTask(t, ns, "import", "apig-http", id, func(task *v1alpha1.AsyncTask) {
		task.Spec.Parameters = map[string]string{"instanceID": "i1"}
	})
	task := waitForPhase(t, ns, "import", v1alpha1.TaskPhaseFailed)
	g := NewWithT(t)
	expectFailedConditions(g, task.Status.Conditions)
	g.Expect(task.Status.Message).To(ContainSubstring("The API group name already exists"))
	g.Expect(task.Status.TaskName).To(Equal("import_api"))
}

func TestHTTPBackendWithABadExpressionIsNotReady(t *testing.T) {
	ns := newNamespace(t)
	spec := httpSampleSpec(t, "http_apigateway.yaml")
	spec.HTTP.Expressions.Phase = "response.body.task_status ==\n  'succeed' ? 'Succeeded' : response.stauts"
	b := createBackend(t, ns, "bad-http", spec, map[string]string{"token": simToken})
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonInvalidConfig)
	g := NewWithT(t)
	g.Expect(ready.Message).To(ContainSubstring("spec.http.expressions.phase"))
	g.Expect(ready.Message).To(ContainSubstring("line 2, column 37"))
	g.Expect(ready.Message).To(ContainSubstring(`response has no field "stauts"`))
}
