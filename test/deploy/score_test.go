package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// acceptedScores are the kube-score findings we keep, by the text of the finding, with the reason.
var acceptedScores = map[string]string{
	// A CPU limit throttles the manager under load (CFS quota) and buys nothing: the CPU request reserves
	// its share and the workers bound its concurrency.
	"CPU limit is not set": "throttling, not protection",
	// Images are pulled by version tag or digest (image.digest); Always makes every restart depend on the
	// registry being up.
	"ImagePullPolicy is not set to Always": "immutable tags or digests",
	// The container writes nothing but its logs (read-only root, no volumes), which the kubelet rotates; a
	// limit would only add a way to be evicted.
	"Ephemeral Storage limit is not set":   "writes only rotated logs",
	"Ephemeral Storage request is not set": "writes only rotated logs",
}

// Findings kept for some manifests only, with the reason.
const (
	// A single replica is the default: it runs as before the ring, and a node's loss costs a reschedule and
	// a cache sync. config/ring and replicaCount > 1 in the chart run more, and must not draw this finding.
	fewReplicas = "Deployment few replicas"
	// The replicas are spread over nodes by topologySpreadConstraints (ScheduleAnyway), which kube-score
	// v1.20 does not look at; a podAntiAffinity too would say the same twice.
	noAntiAffinity = "Deployment does not have a host podAntiAffinity set"
	// dist/install.yaml has no NetworkPolicy: config/networkpolicy is an example to edit per cluster.
	noNetworkPolicy = "The pod does not have a matching NetworkPolicy"
)

// TestManifestsPassKubeScore runs kube-score (pod security, probes, resources, network policy, disruption
// budgets) over dist/install.yaml, config/ring and the chart with one and with three replicas; any finding not
// in acceptedScores or the case's own list fails.
func TestManifestsPassKubeScore(t *testing.T) {
	root := repoRoot()
	kubeScore := filepath.Join(root, "bin", "kube-score")
	if _, err := os.Stat(kubeScore); err != nil {
		t.Fatalf("bin/kube-score missing (run `make test`, which builds it): %v", err)
	}
	install, err := os.ReadFile(filepath.Join(root, "dist", "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	chart := func(values ...string) []byte {
		values = append(values, "networkPolicy.enabled=true", "networkPolicy.apiServer.cidrs={10.96.0.1/32}")
		out, err := helm(t, templateArgs(values...)...)
		if err != nil {
			t.Fatalf("helm template %v: %v\n%s", values, err, out)
		}
		return out
	}
	// make deploy puts IMG where config/ and so config/ring name the image by its latest tag.
	ring := bytes.ReplaceAll(kustomize(t, "ring"), []byte("image: ghcr.io/asynctask-operator/asynctask-operator:latest"),
		[]byte("image: registry.example.com/asynctask-operator:v0.1.0"))
	for name, tc := range map[string]struct {
		manifests []byte
		accepted  []string
	}{
		"dist/install.yaml":                      {install, []string{fewReplicas, noNetworkPolicy}},
		"config/ring":                            {ring, []string{noAntiAffinity, noNetworkPolicy}},
		"chart with its NetworkPolicy":           {chart(), []string{fewReplicas}},
		"chart with three replicas on a ring":    {chart("replicaCount=3"), []string{noAntiAffinity}},
		"chart with three replicas and a leader": {chart("replicaCount=3", "sharding=leader"), []string{noAntiAffinity}},
	} {
		cmd := exec.Command(kubeScore, "score", "--output-format", "ci", "-")
		cmd.Stdin = bytes.NewReader(tc.manifests)
		out, _ := cmd.Output() // exits 1 on any critical finding; the findings are judged below
		findings := 0
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(line, "[CRITICAL]") && !strings.HasPrefix(line, "[WARNING]") {
				continue
			}
			findings++
			accepted := false
			for text := range acceptedScores {
				accepted = accepted || strings.HasSuffix(line, text)
			}
			for _, text := range tc.accepted {
				accepted = accepted || strings.HasSuffix(line, text)
			}
			if !accepted {
				t.Errorf("%s: kube-score: %s", name, line)
			}
		}
		if findings == 0 && len(out) == 0 {
			t.Errorf("%s: kube-score said nothing", name)
		}
	}
}
