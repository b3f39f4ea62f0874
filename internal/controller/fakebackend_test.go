package controller

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// fakeBackend is a backend.Backend whose methods call the functions it holds (crossplane's ExternalClientFns):
// a nil PollFn answers Running, a nil CheckFn accepts. It counts the polls it was asked.
type fakeBackend struct {
	PollFn  func(ctx context.Context, taskID string) (backend.Observation, error)
	CheckFn func(ctx context.Context) error

	mu    sync.Mutex
	asked int
}

func (f *fakeBackend) Poll(ctx context.Context, taskID string) (backend.Observation, error) {
	f.mu.Lock()
	f.asked++
	poll := f.PollFn
	f.mu.Unlock()
	if poll == nil {
		return backend.Observation{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "running"}, nil
	}
	return poll(ctx, taskID)
}

func (f *fakeBackend) Check(ctx context.Context) error {
	if f.CheckFn == nil {
		return nil
	}
	return f.CheckFn(ctx)
}

func (f *fakeBackend) polls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

// lookup is an Options.BackendFactory that builds f for every backend type.
func (f *fakeBackend) lookup(v1alpha1.BackendType) (backend.Factory, error) {
	return func(backend.Config) (backend.Backend, error) { return f, nil }, nil
}

// byHandShard labels the tasks a test reconciles itself, so that the suite's operator leaves them alone.
const byHandShard = "by-hand"

// newHandDrivenReconciler returns an AsyncTask reconciler that reads and writes the envtest API server
// directly, builds every backend with lookup, and runs on a fake clock without jitter, for a test to call
// Reconcile on step by step.
func newHandDrivenReconciler(lookup func(v1alpha1.BackendType) (backend.Factory, error)) (*AsyncTaskReconciler, *clocktesting.FakeClock) {
	clk := clocktesting.NewFakeClock(time.Now())
	schedule := newTestScheduler()
	conns := newConnector(k8sClient, newSecretReader(k8sClient, k8sClient), withTestNetwork(Options{BackendFactory: lookup}))
	return &AsyncTaskReconciler{
		Client: k8sClient, APIReader: k8sClient, Scheme: testScheme, FieldOwner: "by-hand",
		clock: clk, connector: conns, schedule: schedule,
		tasksOf: &taskMapper{client: k8sClient, schedule: schedule}, wake: make(chan event.GenericEvent, 16),
	}, clk
}

// TestTaskIsAskedOnlyWhenDueAndADeferredPollIsNoError drives the reconciler by hand with a fake backend and a
// fake clock: an early reconcile asks nothing, a deferred poll changes no status and leaves the task due, an
// error is recorded with its reason, and a finished task is never asked again.
func TestTaskIsAskedOnlyWhenDueAndADeferredPollIsNoError(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createBackend(t, ns, "fake", apigSpec(), apigToken(simToken))
	task := createTask(t, ns, "t", "fake", "id-1", func(task *v1alpha1.AsyncTask) {
		task.Labels = map[string]string{ShardLabel: byHandShard}
	})
	fake := &fakeBackend{}
	r, clk := newHandDrivenReconciler(fake.lookup)
	reconcile := func() ctrl.Result {
		t.Helper()
		result, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: taskKey(task)})
		g.Expect(err).NotTo(HaveOccurred())
		return result
	}

	g.Expect(reconcile().RequeueAfter).To(Equal(time.Second), "polled, next after the backend's interval")
	g.Expect(fake.polls()).To(Equal(1))
	got := getTask(g, ns, "t")
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
	expectCondition(g, got.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRunning)

	g.Expect(reconcile().RequeueAfter).To(Equal(time.Second), "an early reconcile waits out the interval")
	g.Expect(fake.polls()).To(Equal(1), "and asks nothing")

	clk.Step(time.Second)
	fake.PollFn = func(context.Context, string) (backend.Observation, error) {
		return backend.Observation{}, &backend.Error{Kind: backend.KindDeferred, RetryAfter: 3 * time.Second, Message: "waiting for the backend's rate limit"}
	}
	g.Expect(reconcile().RequeueAfter).To(Equal(3 * time.Second))
	g.Expect(getTask(g, ns, "t").ResourceVersion).To(Equal(got.ResourceVersion), "a deferred poll writes nothing")

	fake.PollFn = func(context.Context, string) (backend.Observation, error) {
		return backend.Observation{}, backend.Errorf(backend.KindAuthentication, "vendor answered HTTP 401")
	}
	g.Expect(reconcile().RequeueAfter).To(Equal(time.Second), "still due after the deferral; a healthy backend is not backed off")
	g.Expect(fake.polls()).To(Equal(3))
	got = getTask(g, ns, "t")
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning), "the last good observation is kept")
	g.Expect(got.Status.ConsecutiveErrors).To(Equal(int32(1)))
	g.Expect(got.Status.Message).To(Equal("Vendor answered HTTP 401"))
	expectCondition(g, got.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)

	clk.Step(time.Second)
	fake.PollFn = func(context.Context, string) (backend.Observation, error) {
		return backend.Observation{Phase: v1alpha1.TaskPhaseSucceeded, VendorStatus: "done"}, nil
	}
	g.Expect(reconcile()).To(Equal(ctrl.Result{RequeueAfter: time.Second}), "once more, to forget its schedule")
	got = getTask(g, ns, "t")
	expectSucceededConditions(g, got.Status.Conditions)
	g.Expect(got.Status.CompletionTime.Time).To(BeTemporally("==", clk.Now().Truncate(time.Second)), "times come from the injected clock")

	clk.Step(time.Hour)
	reconcile()
	g.Expect(fake.polls()).To(Equal(4), "a finished task is never asked again")
}
