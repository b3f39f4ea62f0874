package workflows

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// argoWorkflow is the part of an Argo Workflow the example's wait step is made of.
type argoWorkflow struct {
	Spec struct {
		Templates []struct {
			Name     string `json:"name"`
			Resource *struct {
				Action           string `json:"action"`
				SuccessCondition string `json:"successCondition"`
				FailureCondition string `json:"failureCondition"`
				Manifest         string `json:"manifest"`
			} `json:"resource"`
		} `json:"templates"`
	} `json:"spec"`
}

// argoVerdict is what Argo's executor makes of an object: the step fails as soon as any failureCondition
// requirement matches, succeeds when every successCondition requirement matches, and otherwise gets the
// object again (argo-workflows workflow/executor/resource.go, matchConditions).
type argoVerdict string

const (
	argoSucceeded argoVerdict = "Succeeded"
	argoFailed    argoVerdict = "Failed"
	argoWaiting   argoVerdict = "Waiting"
)

// argoEvaluate evaluates the conditions the way Argo does: each is parsed as a label selector (comma-separated
// requirements `path op value`, op ==, =, != and the other selector operators), and a requirement's key is a
// dotted path looked up in the object's JSON.
func argoEvaluate(obj *unstructured.Unstructured, success, failure string) (argoVerdict, error) {
	successReqs, err := labels.ParseToRequirements(success)
	if err != nil {
		return "", fmt.Errorf("successCondition %q: %w", success, err)
	}
	failureReqs, err := labels.ParseToRequirements(failure)
	if err != nil {
		return "", fmt.Errorf("failureCondition %q: %w", failure, err)
	}
	fields := jsonFields{obj.Object}
	for _, req := range failureReqs {
		if req.Matches(fields) {
			return argoFailed, nil
		}
	}
	for _, req := range successReqs {
		if !req.Matches(fields) {
			return argoWaiting, nil
		}
	}
	return argoSucceeded, nil
}

// jsonFields presents an object's fields to a label requirement, as Argo's gjsonLabels does: a dotted path
// names a field, and its value is the string itself, or the JSON text of anything else.
type jsonFields struct{ object map[string]any }

// Lookup returns the field's value and whether it exists.
func (f jsonFields) Lookup(path string) (string, bool) {
	v, found, err := unstructured.NestedFieldNoCopy(f.object, strings.Split(path, ".")...)
	if !found || err != nil {
		return "", false
	}
	if s, isString := v.(string); isString {
		return s, true
	}
	out, _ := json.Marshal(v)
	return string(out), true
}

// Has reports whether the field exists.
func (f jsonFields) Has(path string) bool { _, ok := f.Lookup(path); return ok }

// Get returns the field's value, "" when it does not exist.
func (f jsonFields) Get(path string) string { v, _ := f.Lookup(path); return v }

func TestArgoWorkflowExampleWaitsForTheTaskToFinish(t *testing.T) {
	g := NewWithT(t)
	var wf argoWorkflow
	g.Expect(readYAML("argo-workflow.yaml", &wf)).To(Succeed())
	var found int
	for _, tmpl := range wf.Spec.Templates {
		res := tmpl.Resource
		if res == nil {
			continue
		}
		found++
		g.Expect(res.Action).To(Equal("get"), "template %s waits on an existing task", tmpl.Name)

		// The manifest names an AsyncTask of this API's group and version.
		var manifest unstructured.Unstructured
		g.Expect(yaml.Unmarshal([]byte(strings.ReplaceAll(res.Manifest, "{{inputs.parameters.task}}", "x")), &manifest.Object)).To(Succeed())
		g.Expect(manifest.GetAPIVersion()).To(Equal(v1alpha1.GroupVersion.String()))
		g.Expect(manifest.GetKind()).To(Equal("AsyncTask"))

		want := map[taskState]argoVerdict{
			stateNew:       argoWaiting,
			stateRunning:   argoWaiting,
			stateStalled:   argoWaiting, // past its progress deadline, but it may still end either way
			stateSucceeded: argoSucceeded,
			stateFailed:    argoFailed,
		}
		for _, s := range states {
			got, err := argoEvaluate(liveTask(t, s), res.SuccessCondition, res.FailureCondition)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(want[s]), "template %s on a %s task (success %q, failure %q)",
				tmpl.Name, s, res.SuccessCondition, res.FailureCondition)
		}
	}
	g.Expect(found).To(Equal(1), "the example has one resource template")
}

// The evaluator itself, on the syntax Argo accepts: comma-separated requirements that must all hold for
// success, any of which is a failure.
func TestArgoConditionsAreLabelSelectorRequirementsOverTheJSON(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{
		"phase": "Succeeded", "progress": int64(100), "resultTruncated": false}}}
	cases := map[string]struct {
		success, failure string
		want             argoVerdict
	}{
		"Equals":                 {success: "status.phase == Succeeded", want: argoSucceeded},
		"SingleEquals":           {success: "status.phase = Succeeded", want: argoSucceeded},
		"AllSuccessRequirements": {success: "status.phase == Succeeded,status.progress == 100", want: argoSucceeded},
		"OneSuccessRequirementMissing": {
			success: "status.phase == Succeeded,status.progress == 50", want: argoWaiting},
		"NotEquals":           {success: "status.phase != Running", want: argoSucceeded},
		"AbsentFieldNotEqual": {success: "status.message != x", want: argoSucceeded},
		"AnyFailureRequirement": {
			success: "status.phase == Succeeded", failure: "status.phase == Failed,status.resultTruncated == false",
			want: argoFailed},
		"FailureBeatsSuccess": {success: "status.phase == Succeeded", failure: "status.phase == Succeeded", want: argoFailed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := argoEvaluate(obj, tc.success, tc.failure)
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			NewWithT(t).Expect(got).To(Equal(tc.want))
		})
	}
}
