package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/controller"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// The commands are tested against a local control plane (envtest, from bin/), the operator running in this
// process, and the vendor simulator: the same pieces as `make demo`.
var (
	k8s        client.Client
	sim        *vendorsim.Simulator
	simURL     string
	kubeconfig string
	// testDir holds the kubeconfig and the built binary; removed when the tests end.
	testDir string
)

const (
	testUser     = "cli-user"
	testPassword = "cli-password"
	testToken    = "cli-token"
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: filepath.Join(root, "bin"),
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the local control plane (make test builds it):", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	testDir, err = os.MkdirTemp("", "cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(testDir) }()
	user, err := env.AddUser(envtest.User{Name: "cli-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	raw, err := user.KubeConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubeconfig = filepath.Join(testDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	sim = vendorsim.New(vendorsim.Credentials{Token: testToken, Username: testUser, Password: testPassword})
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	server := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(listener) }()
	defer func() { _ = server.Close() }()
	simURL = "http://" + listener.Addr().String()

	mgrOptions, err := controller.ManagerOptions(controller.Options{}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgrOptions.Metrics.BindAddress = "0"
	mgrOptions.HealthProbeBindAddress = "0"
	mgr, err := ctrl.NewManager(cfg, mgrOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := controller.SetupWithManager(ctx, mgr, controller.Options{}.WithLoopbackAllowed()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() { cancel(); <-done }() //nolint:errcheck // stopped on purpose: its error says only that
	if k8s, err = client.New(cfg, client.Options{Scheme: Scheme()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// result is what one command run printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the command in this process, as `kubectl asynctask args...` against the test control plane, with
// output that is not a terminal (so: plain lines, no colours).
func run(ctx context.Context, args ...string) result {
	var stdout, stderr bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := cmd.ExecuteContext(ctx)
	if err != nil && err.Error() != "" {
		fmt.Fprintln(&stderr, "Error:", err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: ExitCode(err)}
}

var namespaces atomic.Int32

// newNamespace creates a namespace of its own for a test, with a Network Insight backend "vrni" (reports
// progress) and a Traffic Ops backend "to" (reports none) at the simulator, polled every second.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("cli-%03d", namespaces.Add(1)) // one width: golden output wraps the same whatever the order
	ctx := context.Background()
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "credentials"},
		StringData: map[string]string{"username": testUser, "password": testPassword}}))
	for name, spec := range map[string]v1alpha1.TaskBackendSpec{
		"vrni": {Type: v1alpha1.BackendTypeNetworkInsight},
		"to":   {Type: v1alpha1.BackendTypeTrafficOps, TrafficOps: &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"}},
	} {
		spec.URL = simURL
		spec.PollInterval = &metav1.Duration{Duration: time.Second}
		spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "credentials"}
		must(t, k8s.Create(ctx, &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}))
	}
	return ns
}

var taskIDs atomic.Int32

// newTask scripts a task at the simulator (one step per poll; the last repeats) and creates its AsyncTask on
// backend ("vrni" or "to"). Network Insight IDs are opaque strings, Traffic Ops IDs integers.
func newTask(t *testing.T, ns, name, backendName string, steps ...vendorsim.Step) *v1alpha1.AsyncTask {
	t.Helper()
	n := taskIDs.Add(1)
	id := fmt.Sprintf("TASK_PROGRESS_application.APP_BULK_SAVE.%d.cli", n)
	if backendName == "to" {
		id = fmt.Sprint(100000 + n)
	}
	sim.AddTask(id, steps...)
	task := &v1alpha1.AsyncTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: backendName}, TaskID: id},
	}
	must(t, k8s.Create(context.Background(), task))
	return task
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
