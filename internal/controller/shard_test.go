package controller

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// startOperator starts another operator on the envtest control plane, watching only watchNamespaces if any. stop ends it (without releasing its
// leader lease, as a killed process would not) and waits until it stopped; it also runs at the test's end.
func startOperator(t *testing.T, opts Options, leaderElection bool, watchNamespaces ...string) (stop func(), elected <-chan struct{}) {
	t.Helper()
	mgrOptions, err := ManagerOptions(opts, watchNamespaces)
	if err != nil {
		t.Fatal(err)
	}
	mgrOptions.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgrOptions.LeaderElection = leaderElection
	mgrOptions.LeaderElectionID = "asynctask-test-" + opts.Shard
	mgrOptions.LeaderElectionNamespace = "default"
	mgrOptions.LeaseDuration = ptr.To(2 * time.Second)
	mgrOptions.RenewDeadline = ptr.To(time.Second)
	mgrOptions.RetryPeriod = ptr.To(200 * time.Millisecond)
	mgr, err := ctrl.NewManager(testConfig, mgrOptions)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := SetupWithManager(ctx, mgr, withTestNetwork(opts)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop, mgr.Elected()
}

// statusWriters lists the field managers that wrote the task's status.
func statusWriters(g Gomega, ns, name string) []string {
	var writers []string
	for _, entry := range getTask(g, ns, name).ManagedFields {
		if entry.Subresource == "status" {
			writers = append(writers, entry.Manager)
		}
	}
	return writers
}

func shardLabel(shard string) func(*v1alpha1.AsyncTask) {
	return func(task *v1alpha1.AsyncTask) { task.Labels = map[string]string{ShardLabel: shard} }
}

func TestShardsSplitTheTasks(t *testing.T) {
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	startOperator(t, Options{Shard: "a", FieldOwner: "operator-shard-a"}, false)
	startOperator(t, Options{Shard: "b", FieldOwner: "operator-shard-b"}, false)

	owners := map[string]string{"in-a": "operator-shard-a", "in-b": "operator-shard-b", "unlabelled": "asynctask-operator"}
	for name := range owners {
		id := uniqueTaskID(t) + name
		sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, simSucceeded())
		switch name {
		case "in-a":
			createTask(t, ns, name, "apig", id, shardLabel("a"))
		case "in-b":
			createTask(t, ns, name, "apig", id, shardLabel("b"))
		default:
			createTask(t, ns, name, "apig", id)
		}
	}
	for name, owner := range owners {
		waitForPhase(t, ns, name, v1alpha1.TaskPhaseSucceeded)
		NewWithT(t).Expect(statusWriters(NewWithT(t), ns, name)).To(Equal([]string{owner}), "only its shard's operator writes task %s", name)
	}
}

func TestLeaderElectionHandsOverWithoutLosingTasks(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	stopFirst, firstElected := startOperator(t, Options{Shard: "ha", FieldOwner: "operator-1"}, true)
	g.Eventually(firstElected, eventually).Should(BeClosed())
	_, secondElected := startOperator(t, Options{Shard: "ha", FieldOwner: "operator-2"}, true)

	names := []string{"ha-1", "ha-2", "ha-3"}
	for _, name := range names {
		id := uniqueTaskID(t) + name
		// Running for 6 s: long enough to hand over in the middle.
		sim.AddTimedTask(id, 3*time.Second, vendorsim.Step{Phase: vendorsim.Pending}, vendorsim.Step{Phase: vendorsim.Running},
			vendorsim.Step{Phase: vendorsim.Running}, simSucceeded())
		createTask(t, ns, name, "apig", id, shardLabel("ha"))
	}
	for _, name := range names {
		waitForTask(t, ns, name, func(g Gomega, task *v1alpha1.AsyncTask) {
			g.Expect(task.Status.Phase).NotTo(BeEmpty())
		})
		g.Expect(statusWriters(g, ns, name)).To(Equal([]string{"operator-1"}), "the follower must not poll or write")
	}
	g.Expect(secondElected).NotTo(BeClosed())

	stopFirst() // killed: the lease is not released, the follower waits for it to expire
	g.Eventually(secondElected, eventually).Should(BeClosed())
	for _, name := range names {
		task := waitForPhase(t, ns, name, v1alpha1.TaskPhaseSucceeded)
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
		g.Expect(statusWriters(g, ns, name)).To(ContainElement("operator-2"), "the new leader finished task %s", name)
	}
}

func TestWatchNamespacesConfineTheOperator(t *testing.T) {
	g := NewWithT(t)
	watched, other := newNamespace(t), newNamespace(t)
	for _, ns := range []string{watched, other} {
		createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
		id := uniqueTaskID(t) + ns
		sim.AddTask(id, simSucceeded())
		createTask(t, ns, "confined", "apig", id, shardLabel("confined"))
	}
	startOperator(t, Options{Shard: "confined", FieldOwner: "operator-confined"}, false, watched)

	waitForPhase(t, watched, "confined", v1alpha1.TaskPhaseSucceeded)
	g.Consistently(func(g Gomega) {
		g.Expect(getTask(g, other, "confined").Status.Phase).To(BeEmpty(), "a task outside --watch-namespaces was touched")
	}, 2*time.Second, tick).Should(Succeed())
}
