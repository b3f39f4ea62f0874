package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestManifestsMatchKubernetesSchemas validates, with kubeconform and strict schemas of Kubernetes v1.37 and
// of our CRDs (bin/schemas, generated offline by hack/kubeconform/schemas), everything a user applies:
// dist/install.yaml and config/ring, the chart's output with every optional object on and as a ring, and the
// samples. Strict: a field the API server does not know fails, where the API server itself would drop it with
// a warning.
//
// ServiceMonitor and PrometheusRule are skipped: their CRDs (prometheus-operator's) are not in the repository;
// chart_test checks the ServiceMonitor names the metrics Service's port and the PrometheusRule holds the alerts.
func TestManifestsMatchKubernetesSchemas(t *testing.T) {
	root := repoRoot()
	kubeconform := filepath.Join(root, "bin", "kubeconform")
	schemas := filepath.Join(root, "bin", "schemas")
	for _, need := range []string{kubeconform, filepath.Join(schemas, "deployment_apps_v1.json")} {
		if _, err := os.Stat(need); err != nil {
			t.Fatalf("%s missing (run `make test`, which builds it): %v", need, err)
		}
	}
	dir := t.TempDir()
	charts := map[string][]string{
		"chart-default.yaml": nil,
		"chart-everything.yaml": {"watchNamespaces={team-a,team-b}", "networkPolicy.enabled=true",
			"networkPolicy.apiServer.cidrs={10.96.0.1/32}", "networkPolicy.vendors.cidrs={203.0.113.0/24}",
			"metrics.serviceMonitor.enabled=true", "backendNetwork.allowedCIDRs={10.0.0.0/8}", "imagePullSecrets[0].name=pull",
			"tolerations[0].operator=Exists", "nodeSelector.kubernetes\\.io/os=linux", "podAnnotations.a=b", "priorityClassName=high",
			"monitoring.alerts.enabled=true", "monitoring.dashboard.enabled=true",
			"replicaCount=2", "sharding=leader", "lease.duration=30s", "podDisruptionBudget.maxUnavailable=50%",
			"topologySpreadConstraints[0].maxSkew=1", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
			"topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule"},
		"chart-ring.yaml": {"replicaCount=3"},
	}
	files := []string{filepath.Join(root, "dist", "install.yaml"), filepath.Join(root, "config", "samples"),
		filepath.Join(root, "config", "networkpolicy")}
	ring := filepath.Join(dir, "config-ring.yaml")
	if err := os.WriteFile(ring, kustomize(t, "ring"), 0o644); err != nil {
		t.Fatal(err)
	}
	files = append(files, ring)
	for name, values := range charts {
		out, err := helm(t, templateArgs(values...)...)
		if err != nil {
			t.Fatalf("helm template %v: %v\n%s", values, err, out)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	args := append([]string{"-strict", "-summary", "-output", "text", "-skip", "ServiceMonitor,PrometheusRule", "-ignore-filename-pattern", "kustomization.yaml",
		"-schema-location", filepath.Join(schemas, "{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json")}, files...)
	out, err := exec.Command(kubeconform, args...).CombinedOutput()
	if err != nil {
		t.Errorf("kubeconform: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
