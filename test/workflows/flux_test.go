package workflows

import (
	"bytes"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// fluxKustomization is the part of a Flux Kustomization that decides what it waits for.
type fluxKustomization struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Wait         bool `json:"wait"`
		HealthChecks []struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
			Namespace  string `json:"namespace"`
		} `json:"healthChecks"`
	} `json:"spec"`
}

// Flux judges health with kstatus: Current is healthy, Failed fails the health check at once, InProgress
// waits until the Kustomization's timeout.
func TestFluxKustomizationsWaitForTheTaskToSucceed(t *testing.T) {
	g := NewWithT(t)
	task, err := exampleTask()
	g.Expect(err).NotTo(HaveOccurred())

	var waiting, checking int
	for _, doc := range fluxDocuments(t) {
		var ks fluxKustomization
		g.Expect(yaml.Unmarshal(doc, &ks)).To(Succeed())
		g.Expect(ks.Spec.Wait && len(ks.Spec.HealthChecks) > 0).To(BeFalse(),
			"%s: Flux ignores healthChecks when wait is true; set one or the other", ks.Metadata.Name)
		if ks.Spec.Wait {
			waiting++
		}
		for _, hc := range ks.Spec.HealthChecks {
			checking++
			g.Expect(hc.APIVersion).To(Equal(v1alpha1.GroupVersion.String()), "%s: health check's apiVersion", ks.Metadata.Name)
			g.Expect(hc.Kind).To(Equal("AsyncTask"))
			g.Expect([]string{hc.Namespace, hc.Name}).To(Equal([]string{task.Namespace, task.Name}),
				"%s: the health check names the task of asynctask.yaml", ks.Metadata.Name)
		}
	}
	g.Expect(waiting).To(BeNumerically(">=", 1), "one Kustomization shows wait: true")
	g.Expect(checking).To(BeNumerically(">=", 1), "one Kustomization shows healthChecks")

	want := map[taskState]status.Status{
		stateNew:       status.InProgressStatus,
		stateRunning:   status.InProgressStatus,
		stateStalled:   status.FailedStatus, // Stalled before Reconciling: Flux stops waiting at once
		stateSucceeded: status.CurrentStatus,
		stateFailed:    status.FailedStatus,
	}
	for _, s := range states {
		res, err := status.Compute(liveTask(t, s))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.Status).To(Equal(want[s]), "kstatus of a %s task: %s", s, res.Message)
	}
}

func fluxDocuments(t *testing.T) [][]byte {
	t.Helper()
	all, err := readExample("flux-kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, doc := range bytes.Split(all, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs
}
