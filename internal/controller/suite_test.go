package controller

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// The envtest control plane, the manager under test and the vendor simulator are started once for the package.
var (
	// testConfig and testScheme let tests start managers of their own on the same control plane.
	testEnv    *envtest.Environment
	testConfig *rest.Config
	testScheme *runtime.Scheme
	k8sClient  client.WithWatch
	sim        *vendorsim.Simulator
	simURL     string
)

const simToken = "test-token-value"

// withTestNetwork allows TaskBackends to reach the vendor simulator on 127.0.0.1 and nothing else of loopback,
// as the demo and make run do: loopback is denied to TaskBackends by default.
func withTestNetwork(opts Options) Options {
	opts.TaskBackendNetwork.AllowedCIDRs = append(opts.TaskBackendNetwork.AllowedCIDRs, netip.MustParsePrefix("127.0.0.1/32"))
	return opts
}

func TestMain(m *testing.M) {
	if os.Getenv(managerProcessEnv) != "" {
		os.Exit(runManagerProcess()) // a child of startManagerProcess: an operator to kill
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	flag.Parse()
	if fuzzing() {
		// Fuzz targets need no control plane, and every fuzz worker process would start its own.
		return m.Run()
	}
	// Teed into suiteLogs, at a level TestSecretsNeverLeak turns up, so that it can read what the operator logs.
	logf.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(os.Stderr, &suiteLogs)), zap.UseDevMode(true), zap.Level(suiteLogLevel)))
	assets, err := controlPlaneAssets()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	// A serving-certificate directory of our own survives an API server restart, so clients keep trusting it.
	certDir, err := os.MkdirTemp("", "asynctask-apiserver-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(certDir) }()
	env.ControlPlane.GetAPIServer().CertDir = certDir
	testEnv = env
	cfg, err := env.Start()
	testConfig = cfg
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	scheme := NewScheme()
	if k8sClient, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	sim = vendorsim.New(vendorsim.Credentials{Token: simToken, Username: "sim-user", Password: "sim-password", AccessKey: "sim-ak", SecretKey: "sim-sk"})
	server := httptest.NewServer(sim.Handler())
	defer server.Close()
	simURL = server.URL

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testScheme = scheme
	mgrOptions, err := ManagerOptions(Options{}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgrOptions.Scheme = scheme
	mgr, err := ctrl.NewManager(cfg, mgrOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	suiteCache = mgr.GetCache()
	if err := SetupWithManager(ctx, mgr, withTestNetwork(Options{})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	return m.Run()
}

// controlPlaneAssets finds kube-apiserver and etcd: KUBEBUILDER_ASSETS, else the repository's bin/, which
// `make test` fills.
func controlPlaneAssets() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir, _ = filepath.Abs(filepath.Join("..", "..", "bin"))
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("no %s in %s: run `make test` (or `make controlplane`) to build the local control plane", name, dir)
		}
	}
	return dir, nil
}

// Helpers shared by the envtest tests.

const (
	eventually = 30 * time.Second
	tick       = 100 * time.Millisecond
)

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// createBackend creates a TaskBackend with spec, filling in the simulator's URL and a one-second PollInterval
// where spec leaves them empty. When secretData is not nil it first creates the Secret <name>-creds holding it,
// and refers the backend to it unless spec names a Secret of its own.
func createBackend(t *testing.T, ns, name string, spec v1alpha1.TaskBackendSpec, secretData map[string]string) *v1alpha1.TaskBackend {
	t.Helper()
	ctx := context.Background()
	if spec.URL == "" {
		spec.URL = simURL
	}
	if spec.PollInterval == nil {
		spec.PollInterval = &metav1.Duration{Duration: time.Second}
	}
	if secretData != nil {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-creds"},
			StringData: secretData,
		}
		if err := k8sClient.Create(ctx, secret); err != nil {
			t.Fatalf("creating Secret: %v", err)
		}
		if spec.CredentialsSecretRef == nil {
			spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: secret.Name}
		}
	}
	b := &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8sClient.Create(ctx, b); err != nil {
		t.Fatalf("creating TaskBackend: %v", err)
	}
	return b
}

// apigSpec is the spec of an API Gateway backend; createBackend points it at the simulator.
func apigSpec() v1alpha1.TaskBackendSpec {
	return v1alpha1.TaskBackendSpec{
		Type:       v1alpha1.BackendTypeAPIGateway,
		APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"},
	}
}

// apigToken is the Secret data of an API Gateway backend that uses the fixed token.
func apigToken(token string) map[string]string {
	return map[string]string{"token": token}
}

// waitForBackendReady polls a TaskBackend or ClusterTaskBackend until its Ready condition has the given status
// and reason for the object's current generation, and returns the condition.
func waitForBackendReady(t *testing.T, obj client.Object, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var ready *metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		var st v1alpha1.TaskBackendStatus
		switch b := obj.(type) {
		case *v1alpha1.TaskBackend:
			st = b.Status
		case *v1alpha1.ClusterTaskBackend:
			st = b.Status
		}
		ready = condition(st.Conditions, v1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(status))
		g.Expect(ready.Reason).To(Equal(reason))
		g.Expect(st.ObservedGeneration).To(Equal(obj.GetGeneration()))
	}, eventually, tick).Should(Succeed())
	return ready
}

// createTask creates an AsyncTask for taskID on the named TaskBackend.
func createTask(t *testing.T, ns, name, backendName, taskID string, mutate ...func(*v1alpha1.AsyncTask)) *v1alpha1.AsyncTask {
	t.Helper()
	task := &v1alpha1.AsyncTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: backendName}, TaskID: taskID},
	}
	for _, m := range mutate {
		m(task)
	}
	if err := k8sClient.Create(context.Background(), task); err != nil {
		t.Fatalf("creating AsyncTask: %v", err)
	}
	return task
}

// getTask reads a task fresh from the API server.
func getTask(g Gomega, ns, name string) *v1alpha1.AsyncTask {
	task := &v1alpha1.AsyncTask{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, task)).To(Succeed())
	return task
}

// waitForTask polls the task until check passes.
func waitForTask(t *testing.T, ns, name string, check func(g Gomega, task *v1alpha1.AsyncTask)) *v1alpha1.AsyncTask {
	t.Helper()
	var last *v1alpha1.AsyncTask
	NewWithT(t).Eventually(func(g Gomega) {
		last = getTask(g, ns, name)
		check(g, last)
	}, eventually, tick).Should(Succeed())
	return last
}

// waitForPhase polls the task until it is in phase.
func waitForPhase(t *testing.T, ns, name string, phase v1alpha1.TaskPhase) *v1alpha1.AsyncTask {
	t.Helper()
	return waitForTask(t, ns, name, func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(phase))
	})
}

// waitForFailedPollKeepingRunning polls a task whose vendor answers errors after a Running answer, until the
// task has counted a failed poll yet still shows its last good observation, Running, with Ready False for
// BackendUnavailable, and every check in more passes too.
func waitForFailedPollKeepingRunning(t *testing.T, ns, name string, more ...func(g Gomega, task *v1alpha1.AsyncTask)) {
	t.Helper()
	waitForTask(t, ns, name, func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.ConsecutiveErrors).To(BeNumerically(">=", 1))
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning), "the last good observation is kept")
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
		for _, check := range more {
			check(g, task)
		}
	})
}

// expectCondition asserts a condition's status and reason.
func expectCondition(g Gomega, conds []metav1.Condition, condType string, status metav1.ConditionStatus, reason string) {
	c := condition(conds, condType)
	g.Expect(c).NotTo(BeNil(), "condition %s", condType)
	g.Expect(c.Status).To(Equal(status), "condition %s status", condType)
	g.Expect(c.Reason).To(Equal(reason), "condition %s reason", condType)
}

// expectSucceededConditions asserts the conditions of a task that succeeded: Ready and Finished, for Succeeded.
func expectSucceededConditions(g Gomega, conds []metav1.Condition) {
	expectCondition(g, conds, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
	expectCondition(g, conds, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
}

// expectFailedConditions asserts the conditions of a task that failed: not Ready, Stalled and Finished, for
// TaskFailed.
func expectFailedConditions(g Gomega, conds []metav1.Condition) {
	expectCondition(g, conds, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTaskFailed)
	expectCondition(g, conds, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
	expectCondition(g, conds, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed)
}

// condition returns the condition of the given type, or nil.
func condition(conds []metav1.Condition, condType string) *metav1.Condition {
	return meta.FindStatusCondition(conds, condType)
}

// uniqueTaskID returns a task ID no other test uses, in the 32-hex shape API Gateway gives.
func uniqueTaskID(t *testing.T) string {
	t.Helper()
	sum := 0
	for _, r := range t.Name() {
		sum = sum*31 + int(r)
	}
	return fmt.Sprintf("%016x%016x", uint64(sum), uint64(time.Now().UnixNano()))[:32]
}

// fuzzing reports whether this process fuzzes (go test -fuzz) rather than runs the tests.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}
