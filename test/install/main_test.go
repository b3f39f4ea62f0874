// Package install installs the operator the way a user does (the Helm chart, dist/install.yaml) into a local
// control plane that authorizes with RBAC, and runs the manager as the installed ServiceAccount: as a process
// (rbac_test.go) and from the built image in a runc container (image_test.go). A grant the chart lacks fails
// here, not on a user's cluster.
package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

var (
	root    string // the repository
	cfg     *rest.Config
	admin   client.Client
	sim     *vendorsim.Simulator
	simURL  string
	manager string // the manager binary, built once
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) {
	root, _ = filepath.Abs(filepath.Join("..", ".."))
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env := &envtest.Environment{BinaryAssetsDirectory: filepath.Join(root, "bin")}
	// RBAC is envtest's default too; set here because every test of this package depends on it.
	env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	var err error
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting the local control plane from bin/ (run `make test`, which builds it): %v\n", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if admin, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sim = vendorsim.New(vendorsim.Credentials{Token: simToken, Username: simUser, Password: simPassword})
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	server := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(listener) }()
	defer server.Close() // the process ends
	simURL = "http://" + listener.Addr().String()

	dir, err := os.MkdirTemp("", "asynctask-install-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir) // a temporary directory
	// The image's build flags, so that the build cache of `make image` serves this build.
	manager = filepath.Join(dir, "manager")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", manager, "./cmd")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

const (
	simToken    = "install-token"
	simUser     = "install"
	simPassword = "install-password"
)

// vendorTask is a TaskBackend of one vendor at the simulator, its Secret and one task that succeeds.
type vendorTask struct {
	name, taskID string
	spec         v1alpha1.TaskBackendSpec
	secret       map[string]string
}

// vendorTasks are one task per vendor, with task IDs in each vendor's format made unique by seed.
func vendorTasks(seed string) []vendorTask {
	sum := sha256.Sum256([]byte(seed))
	h := hex.EncodeToString(sum[:])
	return []vendorTask{
		{"apig", h[:32], v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeAPIGateway,
			APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "0605767a3300d5762fb7c0186d9e1779", InstanceID: "eddc4d25480b4cd6b512f270a1b8b341"}},
			map[string]string{"token": simToken}},
		{"vrni", "TASK_PROGRESS_application.APP_BULK_SAVE.1700000000000." + h[:8], v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight},
			map[string]string{"username": simUser, "password": simPassword}},
		{"trafficops", fmt.Sprint(binary.BigEndian.Uint16(sum[:]) + 1), v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps, TrafficOps: &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"}},
			map[string]string{"username": simUser, "password": simPassword}},
		{"zstack", h[32:], v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeZStack},
			map[string]string{"accountName": simUser, "password": simPassword}},
	}
}

// createTasks creates in namespace ns a TaskBackend, Secret and AsyncTask per vendor (all of them, or the
// first n), each task scripted to run once and succeed.
func createTasks(t *testing.T, ns string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for i, v := range vendorTasks(ns) {
		if i == n {
			break
		}
		taskID := v.taskID
		sim.AddTask(taskID, vendorsim.Step{Phase: vendorsim.Running, Progress: 50}, vendorsim.Step{Phase: vendorsim.Succeeded, Progress: 100})
		spec := v.spec
		spec.URL = simURL
		spec.PollInterval = &metav1.Duration{Duration: time.Second}
		spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: v.name + "-credentials"}
		for _, obj := range []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v.name + "-credentials"}, StringData: v.secret},
			&v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v.name}, Spec: spec},
			&v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v.name + "-task"},
				Spec: v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: v.name}, TaskID: taskID}},
		} {
			if err := admin.Create(ctx, obj); err != nil {
				t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
			}
		}
		names = append(names, v.name+"-task")
	}
	return names
}

// waitSucceeded waits until every named task in ns succeeded, failing with their status otherwise.
func waitSucceeded(t *testing.T, ns string, names []string, logs fmt.Stringer) {
	t.Helper()
	NewWithT(t).Eventually(func() []string {
		var pending []string
		for _, name := range names {
			task := &v1alpha1.AsyncTask{}
			if err := admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, task); err != nil {
				return []string{err.Error()}
			}
			if task.Status.Phase != v1alpha1.TaskPhaseSucceeded {
				pending = append(pending, fmt.Sprintf("%s: phase %q, message %q, conditions %+v", name, task.Status.Phase, task.Status.Message, task.Status.Conditions))
			}
		}
		return pending
	}, 90*time.Second, 250*time.Millisecond).Should(BeEmpty(), "tasks did not succeed; manager output:\n%s", logs)
}

// applyManifests applies every object of a multi-document YAML stream with server-side apply, CRDs first
// and waited for, as `kubectl apply --server-side` does for a fresh install.
func applyManifests(t *testing.T, manifests []byte) []*unstructured.Unstructured {
	t.Helper()
	ctx := context.Background()
	objs := decodeManifests(t, manifests)
	var crds, rest []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "CustomResourceDefinition" || obj.GetKind() == "Namespace" {
			crds = append(crds, obj)
		} else {
			rest = append(rest, obj)
		}
	}
	for _, batch := range [][]*unstructured.Unstructured{crds, rest} {
		for _, obj := range batch {
			if err := admin.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
				t.Fatalf("applying %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
			}
		}
		for _, obj := range batch {
			if obj.GetKind() != "CustomResourceDefinition" {
				continue
			}
			waitFor(t, "CRD "+obj.GetName()+" established", func() bool {
				crd := &apiextensionsv1.CustomResourceDefinition{}
				if err := admin.Get(ctx, client.ObjectKey{Name: obj.GetName()}, crd); err != nil {
					return false
				}
				for _, c := range crd.Status.Conditions {
					if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
						return true
					}
				}
				return false
			})
		}
	}
	// The CRDs' kinds are now served; the admin client's REST mapper learns them on its next miss.
	return objs
}

func decodeManifests(t *testing.T, manifests []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// find returns the object of the kind whose name ends in suffix.
func find(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	for _, obj := range objs {
		if obj.GetKind() == kind {
			return obj
		}
	}
	t.Fatalf("no %s in the manifests", kind)
	return nil
}

// serviceAccountToken asks the API server for a token of the ServiceAccount, as the kubelet does for a pod.
func serviceAccountToken(t *testing.T, namespace, name string) string {
	t.Helper()
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	token, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), name, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for service account %s/%s: %v", namespace, name, err)
	}
	return token.Status.Token
}

// writeKubeconfig writes a kubeconfig that authenticates with token to the local API server.
func writeKubeconfig(t *testing.T, token string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "sa"}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFor polls cond every 250 ms for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	NewWithT(t).Eventually(cond, time.Minute, 250*time.Millisecond).Should(BeTrue(), "timed out waiting for %s", what)
}

// isForbidden reports whether err is the API server's 403.
func isForbidden(err error) bool {
	var status interface{ Status() metav1.Status }
	return errors.As(err, &status) && status.Status().Code == http.StatusForbidden
}
