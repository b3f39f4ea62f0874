package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/sharding"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// The ring's timings in these tests: short, so that a crash is noticed in seconds, but long enough that a
// loaded machine's API server renews and delivers the Leases in time (members that miss each other's renewals
// disagree on the ring: docs/design.md, "Replicas"); and the poll interval of their tasks.
const (
	ringLeaseDuration = 6 * time.Second
	ringRenewDeadline = 4 * time.Second
	ringRetryPeriod   = time.Second
	ringInterval      = 3 * time.Second
	// ringTakeover is the longest a crashed replica's task may wait from the crash to its next poll: its Lease
	// expires, the others wait one RetryPeriod, and the task waits for its moment of the interval (one more
	// RetryPeriod for the watch and the timers).
	ringTakeover = ringLeaseDuration + 2*ringRetryPeriod + ringInterval
)

// newTestMembership returns a ring member of the test timings.
func newTestMembership(cfg *rest.Config, ring, identity string) (*sharding.Membership, error) {
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return sharding.NewMembership(sharding.Config{Client: clientset, Namespace: "default", Ring: ring, Identity: identity,
		LeaseDuration: ringLeaseDuration, RenewDeadline: ringRenewDeadline, RetryPeriod: ringRetryPeriod,
		Log: ctrl.Log.WithName("ring").WithValues("member", identity)})
}

// ringReplicaOptions are the options of a test replica: all of a replica's workers may poll the one backend
// of the test, so that a slow machine delays polls as little as it can.
func ringReplicaOptions(ring, identity string, membership *sharding.Membership) Options {
	return withTestNetwork(Options{Shard: ring, Ring: membership, FieldOwner: "ring-" + identity,
		Workers: 16, WorkersPerBackend: 16, WorkersPerNamespace: 16})
}

// ringReplica is one replica of a ring, in this process: an operator for the ring's shard, with its membership.
type ringReplica struct {
	identity   string
	membership *sharding.Membership
	stop       func()
}

// startRingReplica starts a replica; stop stops it as SIGTERM would (polling first, then the Lease), and runs
// at the test's end.
func startRingReplica(t *testing.T, ring, identity string) *ringReplica {
	t.Helper()
	membership, err := newTestMembership(testConfig, ring, identity)
	if err != nil {
		t.Fatal(err)
	}
	opts := ringReplicaOptions(ring, identity, membership)
	mgrOptions, err := ManagerOptions(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	mgrOptions.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(testConfig, mgrOptions)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	if err := SetupWithManager(ctx, mgr, opts); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sharding.RunBeside(ctx, membership, mgr.Start)
	}()
	var once sync.Once
	r := &ringReplica{identity: identity, membership: membership, stop: func() {
		once.Do(func() {
			stop()
			<-done
		})
	}}
	t.Cleanup(r.stop)
	return r
}

// ringTasks creates n running tasks of the ring's shard on one backend polled every ringInterval, and returns
// their vendor IDs by UID.
func ringTasks(t *testing.T, ring string, n int) (ns string, ids map[types.UID]string) {
	t.Helper()
	ns = newNamespace(t)
	spec := apigSpec()
	spec.PollInterval = &metav1.Duration{Duration: ringInterval}
	spec.RateLimit = &v1alpha1.RateLimit{QPS: 1000, Burst: 100}
	createBackend(t, ns, "apig", spec, apigToken(simToken))
	ids = map[types.UID]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for worker := range 8 { // created side by side: one at a time takes a minute on a loaded machine
		wg.Go(func() {
			for i := worker; i < n; i += 8 {
				id := fmt.Sprintf("%s%04d", uniqueTaskID(t)[:28], i) // the index keeps IDs made at once apart
				sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running, Progress: 50, Message: "Importing"})
				task := &v1alpha1.AsyncTask{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("task-%03d", i), Labels: map[string]string{ShardLabel: ring}},
					Spec:       v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: "apig"}, TaskID: id},
				}
				if err := k8sClient.Create(context.Background(), task); err != nil {
					t.Errorf("creating AsyncTask: %v", err)
					return
				}
				mu.Lock()
				ids[task.UID] = id
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return ns, ids
}

// waitForMembers waits until every replica sees exactly the members of replicas.
func waitForMembers(t *testing.T, replicas ...*ringReplica) {
	t.Helper()
	var want []string
	for _, r := range replicas {
		want = append(want, r.identity)
	}
	slices.Sort(want)
	NewWithT(t).Eventually(func(g Gomega) {
		for _, r := range replicas {
			g.Expect(r.membership.Ring().Members()).To(Equal(want), "as %s sees the ring", r.identity)
		}
	}, eventually, tick).Should(Succeed())
}

// ownerOf returns the replica that owns each task, by the ring as the replicas see it (waitForMembers first).
func ownerOf(replicas []*ringReplica, ids map[types.UID]string) map[types.UID]string {
	owners := map[types.UID]string{}
	for uid := range ids {
		for _, r := range replicas {
			if r.membership.Owns(string(uid)) {
				owners[uid] = r.identity
			}
		}
	}
	return owners
}

// waitForPollsAfter waits until every task in ids was polled after since.
func waitForPollsAfter(t *testing.T, ids map[types.UID]string, since time.Time, within time.Duration) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		for uid, id := range ids {
			times := sim.PollTimes(id)
			g.Expect(times).NotTo(BeEmpty(), "task %s never polled", uid)
			g.Expect(times[len(times)-1]).To(BeTemporally(">", since), "task %s not polled since %s", uid, since.Format(time.StampMilli))
		}
	}, within, tick).Should(Succeed())
}

// checkPollSpacing fails for a task polled twice within half an interval (two replicas polled it), or left
// unpolled longer than maxGap (0: no bound), between from and to. It logs the closest two polls and the longest
// wait.
func checkPollSpacing(t *testing.T, what string, ids map[types.UID]string, from, to time.Time, maxGap time.Duration) {
	t.Helper()
	closest, longest := to.Sub(from), time.Duration(0)
	defer func() {
		t.Logf("%s: closest polls of a task %s apart, longest wait %s (bound %s)", what, closest, longest, maxGap)
	}()
	for uid, id := range ids {
		var inWindow []time.Time
		for _, at := range sim.PollTimes(id) {
			if !at.Before(from) && !at.After(to) {
				inWindow = append(inWindow, at)
			}
		}
		for i := 1; i < len(inWindow); i++ {
			gap := inWindow[i].Sub(inWindow[i-1])
			closest = min(closest, gap)
			if gap < ringInterval/2 {
				t.Errorf("task %s polled twice %s apart, at %s and %s", uid, gap, inWindow[i-1].Format(time.StampMilli), inWindow[i].Format(time.StampMilli))
			}
		}
		edges := append(append([]time.Time{from}, inWindow...), to)
		for i := 1; i < len(edges); i++ {
			gap := edges[i].Sub(edges[i-1])
			longest = max(longest, gap)
			if maxGap > 0 && gap > maxGap {
				t.Errorf("task %s not polled for %s, from %s to %s (at most %s)", uid, gap, edges[i-1].Format(time.StampMilli), edges[i].Format(time.StampMilli), maxGap)
			}
		}
	}
}

// Three replicas share 300 tasks, each polled by exactly one; a fourth joins and takes about a quarter; one
// stops gracefully and its tasks move within seconds. Through all of it no task is polled twice within half
// an interval, and none waits longer than two intervals and a RetryPeriod (a handed-over task waits for the
// ring to settle and then for its own moment of the interval).
func TestRingSharesTasksAndHandsThemOver(t *testing.T) {
	const ring = "ring-share"
	sim.KeepPollTimes()
	a, b, c := startRingReplica(t, ring, "replica-a"), startRingReplica(t, ring, "replica-b"), startRingReplica(t, ring, "replica-c")
	waitForMembers(t, a, b, c)
	ns, ids := ringTasks(t, ring, 300)
	start := time.Now()
	waitForPollsAfter(t, ids, start, eventually)
	steadyFrom := time.Now()
	waitForPollsAfter(t, ids, steadyFrom, eventually) // a full round in the steady state

	// Each task polled by exactly one replica: the one the ring gives it wrote its status, and only it.
	owners := ownerOf([]*ringReplica{a, b, c}, ids)
	g := NewWithT(t)
	g.Expect(owners).To(HaveLen(len(ids)), "every task has exactly one owner")
	perReplica := map[string]int{}
	tasks := &v1alpha1.AsyncTaskList{}
	g.Expect(k8sClient.List(context.Background(), tasks, client.InNamespace(ns))).To(Succeed())
	g.Expect(tasks.Items).To(HaveLen(len(ids)))
	for _, task := range tasks.Items {
		owner := owners[task.UID]
		perReplica[owner]++
		var writers []string
		for _, entry := range task.ManagedFields {
			if entry.Subresource == "status" && strings.HasPrefix(entry.Manager, "ring-") {
				writers = append(writers, entry.Manager)
			}
		}
		g.Expect(writers).To(Equal([]string{"ring-" + owner}), "status writers of task %s", task.Name)
	}
	t.Logf("tasks per replica: %v", perReplica)

	// A fourth replica joins: about a quarter of the tasks move, all to it.
	d := startRingReplica(t, ring, "replica-d")
	waitForMembers(t, a, b, c, d)
	joined := time.Now()
	after := ownerOf([]*ringReplica{a, b, c, d}, ids)
	moved := 0
	for uid, owner := range after {
		if owner != owners[uid] {
			moved++
			g.Expect(owner).To(Equal("replica-d"), "task %s moved between old replicas", uid)
		}
	}
	t.Logf("%d of %d tasks moved to the fourth replica", moved, len(ids))
	g.Expect(moved).To(BeNumerically(">=", len(ids)*15/100))
	g.Expect(moved).To(BeNumerically("<=", len(ids)*35/100))
	waitForPollsAfter(t, ids, joined.Add(ringRetryPeriod), eventually)

	// One replica stops gracefully: it stops polling, then releases its Lease, and the others poll its tasks
	// within a RetryPeriod and an interval of the release.
	beforeStop := time.Now()
	checkPollSpacing(t, "three replicas, then a fourth joining", ids, steadyFrom, beforeStop, 2*ringInterval+ringRetryPeriod)
	ofB := map[types.UID]string{}
	for uid, id := range ids {
		if after[uid] == "replica-b" {
			ofB[uid] = id
		}
	}
	b.stop()
	released := time.Now()
	t.Logf("replica-b stopped polling and released its Lease in %s", released.Sub(beforeStop))
	waitForMembers(t, a, c, d)
	waitForPollsAfter(t, ids, released, eventually)
	end := time.Now()
	checkPollSpacing(t, "replica-b's tasks from the release of its Lease", ofB, released, end, 2*ringRetryPeriod+ringInterval)
	checkPollSpacing(t, "all tasks from the stop", ids, beforeStop, end, 0) // for the log, and for double polls
}

// A killed replica (its Lease left to expire) has its tasks polled again by the others within LeaseDuration +
// 2 × RetryPeriod + one interval of the kill; the others' tasks are not disturbed.
func TestRingTakesOverAKilledReplicasTasks(t *testing.T) {
	const ring = "ring-kill"
	sim.KeepPollTimes()
	a, b := startRingReplica(t, ring, "replica-a"), startRingReplica(t, ring, "replica-b")
	killed := startManagerProcess(t, ring, "replica-x")
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(a.membership.Ring().Members()).To(ConsistOf("replica-a", "replica-b", "replica-x"))
		g.Expect(b.membership.Ring().Members()).To(ConsistOf("replica-a", "replica-b", "replica-x"))
	}, eventually, tick).Should(Succeed())
	_, ids := ringTasks(t, ring, 90)
	// A task's first poll comes at once, its second at its own moment of the interval (up to 1.5 intervals
	// later); from the third on, the polls are one interval apart.
	waitForPollsAfter(t, ids, time.Now(), eventually)
	waitForPollsAfter(t, ids, time.Now(), eventually)
	steadyFrom := time.Now()
	waitForPollsAfter(t, ids, steadyFrom, eventually)

	dead, others := map[types.UID]string{}, map[types.UID]string{}
	ringOf3 := a.membership.Ring()
	for uid, id := range ids {
		if ringOf3.Owner(string(uid)) == "replica-x" {
			dead[uid] = id
		} else {
			others[uid] = id
		}
	}
	g := NewWithT(t)
	g.Expect(dead).NotTo(BeEmpty())
	killProcess(t, killed)
	killedAt := time.Now()
	waitForMembers(t, a, b)
	waitForPollsAfter(t, dead, killedAt, eventually)
	end := time.Now()
	for uid, id := range dead {
		times := sim.PollTimes(id)
		i, _ := slices.BinarySearchFunc(times, killedAt, func(at, target time.Time) int { return at.Compare(target) })
		g.Expect(i).To(BeNumerically("<", len(times)))
		g.Expect(times[i].Sub(killedAt)).To(BeNumerically("<=", ringTakeover), "task %s of the killed replica: first poll %s after the kill", uid, times[i].Sub(killedAt))
	}
	checkPollSpacing(t, "the other replicas' tasks", others, steadyFrom, end, ringInterval+ringRetryPeriod)
	checkPollSpacing(t, "the killed replica's tasks before the kill", dead, steadyFrom, killedAt, ringInterval+ringRetryPeriod)
	checkPollSpacing(t, "the killed replica's tasks from the kill", dead, killedAt, end, ringTakeover)
}
