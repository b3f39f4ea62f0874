package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"
)

// krewPlugin is the part of krew's Plugin (krew.googlecontainertools.github.com/v1alpha2) the manifest uses;
// it is read strictly, so a misspelt field fails the test.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

const krewManifest = "../../dist/krew/asynctask.yaml"

func readKrewManifest(t *testing.T, path string) *krewPlugin {
	t.Helper()
	raw, err := os.ReadFile(path)
	must(t, err)
	p := &krewPlugin{}
	if err := yaml.UnmarshalStrict(raw, p); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}

var (
	semverWithV = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)
	sha256Hex   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func TestKrewManifestShape(t *testing.T) {
	p := readKrewManifest(t, krewManifest)
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" {
		t.Errorf("apiVersion %q, kind %q", p.APIVersion, p.Kind)
	}
	// kubectl finds the plugin `kubectl asynctask` as the binary kubectl-asynctask.
	root := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
	if p.Metadata.Name == "" || root.Use != "kubectl-"+p.Metadata.Name {
		t.Errorf("metadata.name %q is not the suffix of the binary %q", p.Metadata.Name, root.Use)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "cmd", root.Use)); err != nil {
		t.Errorf("the binary's main package: %v", err)
	}
	s := p.Spec
	if !semverWithV.MatchString(s.Version) {
		t.Errorf("spec.version %q is not a semantic version with a leading v", s.Version)
	}
	chart, err := os.ReadFile("../../charts/asynctask-operator/Chart.yaml")
	must(t, err)
	if appVersion := regexp.MustCompile(`(?m)^appVersion: "?([^"\n]+)"?$`).FindSubmatch(chart); appVersion == nil || "v"+string(appVersion[1]) != s.Version {
		t.Errorf("spec.version %q is not the release's (the chart's appVersion %q)", s.Version, appVersion)
	}
	if !strings.HasPrefix(s.Homepage, "https://") || s.ShortDescription == "" || len(s.ShortDescription) > 50 || s.Description == "" {
		t.Errorf("homepage %q, shortDescription %q (at most 50 characters), description %q", s.Homepage, s.ShortDescription, s.Description)
	}

	want := map[string]bool{"linux/amd64": true, "linux/arm64": true, "darwin/amd64": true, "darwin/arm64": true, "windows/amd64": true}
	for _, pl := range s.Platforms {
		goos, goarch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		platform := goos + "/" + goarch
		if !want[platform] || len(pl.Selector.MatchLabels) != 2 {
			t.Errorf("platform %v: unexpected or repeated", pl.Selector.MatchLabels)
			continue
		}
		delete(want, platform)
		archive := fmt.Sprintf("/releases/download/%s/kubectl-asynctask_%s_%s_%s.tar.gz", s.Version, s.Version, goos, goarch)
		if !strings.HasPrefix(pl.URI, s.Homepage) || !strings.HasSuffix(pl.URI, archive) {
			t.Errorf("%s: uri %q, want %s...%s", platform, pl.URI, s.Homepage, archive)
		}
		if !sha256Hex.MatchString(pl.SHA256) {
			t.Errorf("%s: sha256 %q is not 64 hex digits", platform, pl.SHA256)
		}
		bin := root.Use
		if goos == "windows" {
			bin += ".exe"
		}
		if pl.Bin != bin {
			t.Errorf("%s: bin %q, want %q", platform, pl.Bin, bin)
		}
	}
	for platform := range want {
		t.Errorf("no platform %s", platform)
	}
}

// The release step writes a release's version, URLs and sums into the manifest, keeping its shape.
func TestKrewReleaseStepFillsInTheSums(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "asynctask.yaml")
	raw, err := os.ReadFile(krewManifest)
	must(t, err)
	must(t, os.WriteFile(manifest, raw, 0o600))
	const version = "v9.8.7"
	sums := map[string]string{}
	for _, platform := range []string{"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64", "windows_amd64"} {
		content := []byte("archive of " + platform)
		must(t, os.WriteFile(filepath.Join(dir, "kubectl-asynctask_"+version+"_"+platform+".tar.gz"), content, 0o600))
		sum := sha256.Sum256(content)
		sums[strings.Replace(platform, "_", "/", 1)] = hex.EncodeToString(sum[:])
	}
	cmd := exec.Command("bash", "dist/krew/release.sh", version)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "ARCHIVES="+dir, "MANIFEST="+manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	p := readKrewManifest(t, manifest)
	if p.Spec.Version != version {
		t.Errorf("spec.version %q, want %q", p.Spec.Version, version)
	}
	for _, pl := range p.Spec.Platforms {
		platform := pl.Selector.MatchLabels["os"] + "/" + pl.Selector.MatchLabels["arch"]
		if pl.SHA256 != sums[platform] || !strings.Contains(pl.URI, "/download/"+version+"/kubectl-asynctask_"+version+"_") {
			t.Errorf("%s: uri %q, sha256 %q; want %s's archive and %s", platform, pl.URI, pl.SHA256, version, sums[platform])
		}
	}
}
