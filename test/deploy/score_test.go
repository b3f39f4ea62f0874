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
	// One replica polls at a time (leader election); a second only takes over sooner. replicaCount=2 in
	// the chart for that.
	"Deployment few replicas": "leader election: one active replica",
}

// TestManifestsPassKubeScore runs kube-score (pod security, probes, resources, network policy) over
// dist/install.yaml and the chart; any finding not in acceptedScores fails. dist/install.yaml has no
// NetworkPolicy (config/networkpolicy is an example to edit per cluster), so that finding is accepted there.
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
	chart, err := helm(t, templateArgs("networkPolicy.enabled=true", "networkPolicy.apiServer.cidrs={10.96.0.1/32}")...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, chart)
	}
	for name, tc := range map[string]struct {
		manifests []byte
		accepted  []string
	}{
		"dist/install.yaml":            {install, []string{"The pod does not have a matching NetworkPolicy"}},
		"chart with its NetworkPolicy": {chart, nil},
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
