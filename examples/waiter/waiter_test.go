package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// The waiter runs against a local control plane with the operator's CRDs, and no operator: the tests play the
// operator by writing task statuses through the status subresource.
var (
	k8s client.Client // direct, uncached
	ns  = "waiter-test"
)

const eventually = 30 * time.Second

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets, _ = filepath.Abs(filepath.Join("..", "..", "bin"))
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
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

	scheme, err := newScheme()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&TaskWaiter{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	defer func() { cancel(); <-done }()
	return m.Run()
}

// newTask creates a task as a user would: the operator would then write its status.
func newTask(t *testing.T, name string, labelled bool) *v1alpha1.AsyncTask {
	t.Helper()
	task := &v1alpha1.AsyncTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.AsyncTaskSpec{
			BackendRef: v1alpha1.BackendReference{Name: "vendor"},
			TaskID:     name,
		},
	}
	if labelled {
		task.Labels = map[string]string{WaitLabel: "true"}
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), task)).To(Succeed())
	return task
}

// setStatus writes the status the operator writes for a phase: the phase and its conditions in one write.
func setStatus(t *testing.T, task *v1alpha1.AsyncTask, phase v1alpha1.TaskPhase, reason, message string) {
	t.Helper()
	g := NewWithT(t)
	now := metav1.Now()
	task.Status.Phase = phase
	task.Status.Message = message
	set := func(typ string, s metav1.ConditionStatus) {
		meta.SetStatusCondition(&task.Status.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: message, ObservedGeneration: task.Generation})
	}
	switch phase {
	case v1alpha1.TaskPhaseSucceeded:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue)
		set(v1alpha1.ConditionFinished, metav1.ConditionTrue)
		task.Status.CompletionTime = &now
	case v1alpha1.TaskPhaseFailed:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue)
		set(v1alpha1.ConditionFinished, metav1.ConditionTrue)
		task.Status.CompletionTime = &now
	default:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue)
	}
	task.Status.ObservedGeneration = task.Generation
	g.Expect(k8s.Status().Update(context.Background(), task)).To(Succeed())
}

func outcomeConfigMap(g Gomega, task *v1alpha1.AsyncTask) map[string]string {
	var cm corev1.ConfigMap
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: task.Name + OutcomeSuffix}, &cm)).To(Succeed())
	g.Expect(metav1.IsControlledBy(&cm, task)).To(BeTrue(), "the ConfigMap is owned by its task, and goes with it")
	return cm.Data
}

func TestSucceededTaskGetsAnOutcomeConfigMap(t *testing.T) {
	g := NewWithT(t)
	task := newTask(t, "import-ok", true)
	setStatus(t, task, v1alpha1.TaskPhaseSucceeded, v1alpha1.ReasonSucceeded, "Imported 12 rows")

	g.Eventually(func(g Gomega) {
		data := outcomeConfigMap(g, task)
		g.Expect(data).To(HaveKeyWithValue("outcome", "Succeeded"))
		g.Expect(data).To(HaveKeyWithValue("reason", v1alpha1.ReasonSucceeded))
		g.Expect(data).To(HaveKeyWithValue("message", "Imported 12 rows"))
		g.Expect(data).To(HaveKey("completionTime"))
	}, eventually).Should(Succeed())
}

func TestFailedTaskGetsAFailedOutcomeWithItsReason(t *testing.T) {
	g := NewWithT(t)
	task := newTask(t, "import-bad", true)
	setStatus(t, task, v1alpha1.TaskPhaseFailed, v1alpha1.ReasonTaskFailed, "Row 3: bad date")

	g.Eventually(func(g Gomega) {
		data := outcomeConfigMap(g, task)
		g.Expect(data).To(HaveKeyWithValue("outcome", "Failed"))
		g.Expect(data).To(HaveKeyWithValue("reason", v1alpha1.ReasonTaskFailed))
	}, eventually).Should(Succeed())
}

// The status write that finishes a task is what wakes the waiter: a running task has no outcome, and gets one
// when the operator writes Finished.
func TestTaskGetsItsOutcomeWhenItFinishes(t *testing.T) {
	g := NewWithT(t)
	task := newTask(t, "import-later", true)
	setStatus(t, task, v1alpha1.TaskPhaseRunning, v1alpha1.ReasonRunning, "Importing")
	reconcileNow(t, task)
	expectNoOutcome(t, task)

	setStatus(t, task, v1alpha1.TaskPhaseSucceeded, v1alpha1.ReasonSucceeded, "Imported")
	g.Eventually(func(g Gomega) {
		g.Expect(outcomeConfigMap(g, task)).To(HaveKeyWithValue("outcome", "Succeeded"))
	}, eventually).Should(Succeed())
}

func TestUnlabelledTaskIsLeftAlone(t *testing.T) {
	task := newTask(t, "not-mine", false)
	setStatus(t, task, v1alpha1.TaskPhaseSucceeded, v1alpha1.ReasonSucceeded, "Done")
	reconcileNow(t, task)
	expectNoOutcome(t, task)
}

// reconcileNow runs one reconcile of the task synchronously, reading from the API server, so that "nothing
// happened" is a checked result rather than a wait.
func reconcileNow(t *testing.T, task *v1alpha1.AsyncTask) {
	t.Helper()
	_, err := (&TaskWaiter{Client: k8s}).Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(task)})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
}

func expectNoOutcome(t *testing.T, task *v1alpha1.AsyncTask) {
	t.Helper()
	err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: task.Name + OutcomeSuffix}, &corev1.ConfigMap{})
	NewWithT(t).Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no outcome ConfigMap for %s, got %v", task.Name, err)
}
