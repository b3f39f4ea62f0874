// Package workflows checks the workflow-engine examples in examples/workflows against real AsyncTask objects
// on a local control plane: the expressions Argo Workflows evaluates, the kstatus verdicts Flux acts on, and
// the Tekton step's script run with the real kubectl. The tests read the example files, so the examples and
// what is tested cannot drift apart.
package workflows

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

var (
	examples = filepath.Join("..", "..", "examples", "workflows")
	binDir   string // kube-apiserver, etcd, kubectl
	k8s      client.Client
	kubeCfg  []byte // admin kubeconfig of the control plane
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	binDir = os.Getenv("KUBEBUILDER_ASSETS")
	if binDir == "" {
		binDir, _ = filepath.Abs(filepath.Join("..", "..", "bin"))
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: binDir,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane (run `make controlplane` or set KUBEBUILDER_ASSETS):", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	kubeCfg = env.KubeConfig
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := createTasks(); err != nil {
		fmt.Fprintln(os.Stderr, "creating the tasks:", err)
		return 1
	}
	return m.Run()
}

// taskState is one row of docs/gitops.md's table: a status the operator writes.
type taskState string

const (
	stateNew       taskState = "new"     // created, not yet observed: observedGeneration -1, no conditions
	stateRunning   taskState = "running" // Running
	stateStalled   taskState = "stalled" // Running, past progressDeadlineSeconds
	stateSucceeded taskState = "succeeded"
	stateFailed    taskState = "failed"
)

var states = []taskState{stateNew, stateRunning, stateStalled, stateSucceeded, stateFailed}

// exampleTask is examples/workflows/asynctask.yaml, the task the examples wait on.
func exampleTask() (*v1alpha1.AsyncTask, error) {
	var task v1alpha1.AsyncTask
	return &task, readYAML("asynctask.yaml", &task)
}

// taskName is the name of the copy of the example task in a state.
func taskName(s taskState) string { return "import-petstore-" + string(s) }

// createTasks creates one copy of the example task per state and writes its status through the status
// subresource, as the operator would; no operator runs.
func createTasks() error {
	ctx := context.Background()
	base, err := exampleTask()
	if err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: base.Namespace}}); err != nil {
		return err
	}
	for _, s := range states {
		task := base.DeepCopy()
		task.Name = taskName(s)
		if err := k8s.Create(ctx, task); err != nil {
			return err
		}
		if s == stateNew {
			continue
		}
		setStatus(task, s)
		if err := k8s.Status().Update(ctx, task); err != nil {
			return fmt.Errorf("status of %s: %w", task.Name, err)
		}
	}
	return nil
}

// setStatus fills in the status the operator writes in a state, conditions in the operator's order (Ready,
// Stalled, Reconciling, Finished: kstatus reads the first of Stalled and Reconciling).
func setStatus(task *v1alpha1.AsyncTask, s taskState) {
	now := metav1.Now()
	st := &task.Status
	st.ObservedGeneration = task.Generation
	set := func(typ string, status metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason,
			Message: message, ObservedGeneration: task.Generation})
	}
	switch s {
	case stateRunning, stateStalled:
		st.Phase, st.Message = v1alpha1.TaskPhaseRunning, "Importing"
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRunning, "The task is running")
		if s == stateStalled {
			set(v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonProgressDeadlineExceeded, "No progress for 10m")
		}
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonRunning, "The task is running")
	case stateSucceeded:
		st.Phase, st.Message, st.CompletionTime = v1alpha1.TaskPhaseSucceeded, "Imported 12 APIs", &now
		st.Result = &v1alpha1.JSON{Raw: []byte(`{"apis":12}`)}
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, st.Message)
		set(v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, st.Message)
	case stateFailed:
		st.Phase, st.Message, st.CompletionTime = v1alpha1.TaskPhaseFailed, "Line 3: bad path", &now
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTaskFailed, st.Message)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed, st.Message)
		set(v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonTaskFailed, st.Message)
	}
}

// liveTask reads a task back from the API server as unstructured, as the workflow engines see it.
func liveTask(t *testing.T, s taskState) *unstructured.Unstructured {
	t.Helper()
	base, err := exampleTask()
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("AsyncTask"))
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: base.Namespace, Name: taskName(s)}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// readExample reads one file of examples/workflows.
func readExample(file string) ([]byte, error) { return os.ReadFile(filepath.Join(examples, file)) }

// readYAML reads one example file into v.
func readYAML(file string, v any) error {
	data, err := readExample(file)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(data, v)
}
