package install

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The image `make image` built (bin/image/oci), read with nothing but the OCI image layout specification, and
// run by runc the way a kubelet would run the Deployment's pod: as user 65532 from the image, a read-only root
// file system, no capabilities, the ServiceAccount's token, CA and namespace mounted read-only at the
// in-cluster path, and KUBERNETES_SERVICE_HOST/PORT pointing at the local API server. The host's network is
// shared (no network namespace), so the container reaches the API server and vendor simulator on 127.0.0.1.

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Env        []string          `json:"Env"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

// requireRootAndRunc skips the test where containers cannot run, except in CI, where it fails.
func requireRootAndRunc(t *testing.T) string {
	t.Helper()
	reason := ""
	runc, err := exec.LookPath("runc")
	switch {
	case os.Geteuid() != 0:
		reason = "running the image needs root (runc creates the container's namespaces and mounts)"
	case err != nil:
		reason = "running the image needs runc (`make test` installs it with apt-get): " + err.Error()
	}
	if reason != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(reason)
		}
		t.Skip(reason)
	}
	return runc
}

// readBlob decodes the JSON blob of a descriptor from the layout.
func readBlob(t *testing.T, layout, digest string, into any) {
	t.Helper()
	algorithm, hex, _ := strings.Cut(digest, ":")
	data, err := os.ReadFile(filepath.Join(layout, "blobs", algorithm, hex))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, into); err != nil {
		t.Fatal(err)
	}
}

// readImage finds the linux/arch image of the layout's only index and returns its config and layer paths.
func readImage(t *testing.T, layout, arch string) (imageConfig, []string) {
	t.Helper()
	var top struct{ Manifests []descriptor }
	data, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatalf("%v (run `make image`)", err)
	}
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index.json holds %+v, want one image index", top.Manifests)
	}
	var index struct{ Manifests []descriptor }
	readBlob(t, layout, top.Manifests[0].Digest, &index)
	var platforms []string
	var chosen *descriptor
	for i, m := range index.Manifests {
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
		if m.Platform.OS == "linux" && m.Platform.Architecture == arch {
			chosen = &index.Manifests[i]
		}
	}
	if !slices.Contains(platforms, "linux/amd64") || !slices.Contains(platforms, "linux/arm64") {
		t.Errorf("the image index has platforms %v, want linux/amd64 and linux/arm64", platforms)
	}
	if chosen == nil {
		t.Fatalf("no linux/%s image in %v", arch, platforms)
	}
	var manifest struct {
		Config descriptor
		Layers []descriptor
	}
	readBlob(t, layout, chosen.Digest, &manifest)
	var cfg imageConfig
	readBlob(t, layout, manifest.Config.Digest, &cfg)
	var layers []string
	for _, l := range manifest.Layers {
		algorithm, hex, _ := strings.Cut(l.Digest, ":")
		layers = append(layers, filepath.Join(layout, "blobs", algorithm, hex))
	}
	return cfg, layers
}

// unpack extracts gzipped tar layers (directories and regular files: all the image holds) into dir.
func unpack(t *testing.T, dir string, layers []string) {
	t.Helper()
	for _, layer := range layers {
		f, err := os.Open(layer)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, filepath.Clean("/"+h.Name))
			switch h.Typeflag {
			case tar.TypeDir:
				err = os.MkdirAll(target, os.FileMode(h.Mode))
			case tar.TypeReg:
				var out *os.File
				if out, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)); err == nil {
					_, err = io.Copy(out, tr)
					err = errors.Join(err, out.Close())
				}
			default:
				t.Fatalf("layer entry %s of type %c: the image should hold only directories and files", h.Name, h.Typeflag)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
				t.Fatal(err)
			}
		}
		f.Close() // read only
	}
}

func TestImageRunsTheOperatorInAContainer(t *testing.T) {
	runc := requireRootAndRunc(t)
	cfgFile, layers := readImage(t, filepath.Join(root, "bin", "image", "oci"), "amd64")
	c := cfgFile.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/manager"}) {
		t.Errorf("image user %q entrypoint %q, want 65532:65532 and [/manager]", c.User, c.Entrypoint)
	}
	for _, label := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if c.Labels[label] == "" {
			t.Errorf("image label %s missing: %v", label, c.Labels)
		}
	}

	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	unpack(t, rootfs, layers)
	for _, want := range []string{"manager", "etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "usr/share/zoneinfo.zip"} {
		if _, err := os.Stat(filepath.Join(rootfs, want)); err != nil {
			t.Errorf("image lacks /%s", want)
		}
	}

	// Installed as a user installs it: dist/install.yaml, and a task to track.
	manifests, err := os.ReadFile(filepath.Join(root, "dist", "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := applyManifests(t, manifests)
	sa := find(t, objs, "ServiceAccount")
	const tenant = "tenant-image"
	createNamespace(t, tenant)
	names := createTasks(t, tenant, 1)

	// What the kubelet mounts for the pod's ServiceAccount.
	saDir := filepath.Join(bundle, "serviceaccount")
	for name, content := range map[string][]byte{"token": []byte(serviceAccountToken(t, sa.GetNamespace(), sa.GetName())),
		"ca.crt": cfg.CAData, "namespace": []byte(sa.GetNamespace())} {
		if err := os.MkdirAll(saDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(saDir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apiServer, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	probePort, metricsPort := freePort(t), freePort(t)
	var args []string
	for _, arg := range deploymentArgs(t, objs) {
		switch {
		case strings.HasPrefix(arg, "--health-probe-bind-address"):
			arg = fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort)
		case strings.HasPrefix(arg, "--metrics-bind-address"):
			arg = fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort) // :8443 on the host could be taken
		}
		args = append(args, arg)
	}
	args = append(args, "--taskbackend-allowed-cidrs=127.0.0.1/32")
	env := append(slices.Clone(c.Env), "KUBERNETES_SERVICE_HOST="+apiServer.Hostname(), "KUBERNETES_SERVICE_PORT="+apiServer.Port(),
		"GOMEMLIMIT=268435456") // what the Deployment's resourceFieldRef gives for limits.memory 256Mi
	writeRuncConfig(t, runc, bundle, append(slices.Clone(c.Entrypoint), args...), env, c.User, c.WorkingDir, saDir)

	state := filepath.Join(bundle, "state")
	id := fmt.Sprintf("asynctask-image-test-%d", os.Getpid())
	logs := &syncBuffer{}
	cmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command(runc, "--root", state, "kill", id, "KILL").Run()
		_ = cmd.Wait()
		if out, err := exec.Command(runc, "--root", state, "delete", "--force", id).CombinedOutput(); err != nil && !strings.Contains(string(out), "does not exist") {
			t.Errorf("runc delete --force %s: %v\n%s", id, err, out)
		}
		if t.Failed() {
			t.Logf("container output:\n%s", logs)
		}
	})

	waitFor(t, "the container's readiness probe", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort))
		if err != nil {
			return false
		}
		resp.Body.Close() // read nothing
		return resp.StatusCode == http.StatusOK
	})
	checkContainerProcess(t, runc, state, id)
	waitSucceeded(t, tenant, names, logs)
	checkLeaseAndEvents(t, sa.GetNamespace(), tenant)
	checkMetricsNeedTheReaderRole(t, metricsPort, tenant)
	if strings.Contains(logs.String(), `"level":"error"`) {
		t.Errorf("the operator logged errors:\n%s", logs)
	}
}

// writeRuncConfig writes the bundle's config.json: runc's default spec, changed to run like the Deployment's
// container (user, read-only root, no capabilities, no new privileges) on the host's network.
func writeRuncConfig(t *testing.T, runc, bundle string, args, env []string, user, cwd, saDir string) {
	t.Helper()
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	var uid, gid int
	if _, err := fmt.Sscanf(user, "%d:%d", &uid, &gid); err != nil {
		t.Fatalf("image user %q: %v", user, err)
	}
	if cwd == "" {
		cwd = "/"
	}
	process := spec["process"].(map[string]any)
	process["terminal"] = false
	process["args"], process["env"], process["cwd"] = args, env, cwd
	process["user"] = map[string]any{"uid": uid, "gid": gid}
	process["noNewPrivileges"] = true
	process["capabilities"] = map[string]any{} // drop: ["ALL"]
	spec["root"] = map[string]any{"path": "rootfs", "readonly": true}
	linux := spec["linux"].(map[string]any)
	linux["namespaces"] = slices.DeleteFunc(linux["namespaces"].([]any), func(ns any) bool {
		return ns.(map[string]any)["type"] == "network" // the host's network: the API server is on 127.0.0.1
	})
	// Without a network namespace of its own the container may not mount sysfs: bind the host's, read-only.
	mounts := slices.DeleteFunc(spec["mounts"].([]any), func(m any) bool {
		return strings.HasPrefix(m.(map[string]any)["destination"].(string), "/sys")
	})
	mounts = append(mounts,
		map[string]any{"destination": "/sys", "type": "none", "source": "/sys", "options": []string{"rbind", "nosuid", "noexec", "nodev", "ro"}},
		map[string]any{"destination": "/var/run/secrets/kubernetes.io/serviceaccount", "type": "bind", "source": saDir,
			"options": []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
	spec["mounts"] = mounts
	if data, err = json.MarshalIndent(spec, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkContainerProcess checks from the host that the container's process runs as 65532 with no
// capabilities, on a read-only root.
func checkContainerProcess(t *testing.T, runc, stateDir, id string) {
	t.Helper()
	out, err := exec.Command(runc, "--root", stateDir, "state", id).Output()
	if err != nil {
		t.Fatalf("runc state: %v", err)
	}
	var state struct{ Pid int }
	if err := json.Unmarshal(out, &state); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", state.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65532\t65532\t65532\t65532", "Gid:\t65532\t65532\t65532\t65532", "CapEff:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("container process status lacks %q:\n%s", want, status)
		}
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mounts", state.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if fields := strings.Fields(line); len(fields) > 3 && fields[1] == "/" && !slices.Contains(strings.Split(fields[3], ","), "ro") {
			t.Errorf("the container's root is mounted %q, want read-only", fields[3])
		}
	}
}

// checkMetricsNeedTheReaderRole scrapes the HTTPS metrics endpoint as a ServiceAccount bound to the
// metrics-reader ClusterRole (allowed) and as one that is not (forbidden): the manager checks both with a
// TokenReview and a SubjectAccessReview, which its metrics-auth ClusterRole lets it create.
func checkMetricsNeedTheReaderRole(t *testing.T, port int, namespace string) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"scraper", "stranger"} {
		if err := admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "image-test-scraper"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "asynctask-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: namespace, Name: "scraper"}}}
	if err := admin.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	// The manager serves a self-signed certificate; the scrape is about who may read, not whom to trust.
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // test only: see above
	scrape := func(token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", port), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close() // read below
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	scraper, stranger := serviceAccountToken(t, namespace, "scraper"), serviceAccountToken(t, namespace, "stranger")
	var code int
	var body string
	waitFor(t, "metrics for the metrics-reader", func() bool { code, body = scrape(scraper); return code == http.StatusOK })
	if !strings.Contains(body, "controller_runtime_reconcile_total") {
		t.Errorf("metrics lack controller_runtime_reconcile_total:\n%.2000s", body)
	}
	if code, body = scrape(stranger); code != http.StatusForbidden {
		t.Errorf("a ServiceAccount without the metrics-reader role scraped: HTTP %d %.200s", code, body)
	}
}

// freePort returns a loopback TCP port free right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // only its port is wanted
	return l.Addr().(*net.TCPAddr).Port
}
