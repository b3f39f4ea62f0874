package controller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

func TestVendorOutageBacksOffThenRecoversWithinAnInterval(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	names := []string{"down-1", "down-2", "down-3"}
	ids := map[string]string{}
	for _, name := range names {
		ids[name] = uniqueTaskID(t) + name
		// Running at 40% until the outage is over, then it succeeds at the next answer.
		sim.AddTask(ids[name], vendorsim.Step{Phase: vendorsim.Running})
		createTask(t, ns, name, "apig", ids[name])
	}
	for _, name := range names {
		waitForPhase(t, ns, name, v1alpha1.TaskPhaseRunning)
	}

	sim.SetOutage(http.StatusServiceUnavailable)
	t.Cleanup(func() { sim.SetOutage(0) })
	for _, name := range names {
		waitForTask(t, ns, name, func(g Gomega, task *v1alpha1.AsyncTask) {
			g.Expect(task.Status.ConsecutiveErrors).To(BeNumerically(">=", 4))
			g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning), "the last good observation is kept")
			g.Expect(task.Status.VendorStatus).To(Equal("processing"))
			expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
			g.Expect(task.Status.Message).To(ContainSubstring("HTTP 503"))
		})
	}

	for _, name := range names {
		sim.AddTask(ids[name], simSucceeded())
	}
	sim.SetOutage(0)
	// Every task but the probe has backed off to about 8 s by now; the probe finds the vendor back within
	// about one interval (1 s) and wakes them all. 5 s leaves room for a loaded machine and still tells the
	// two apart.
	for _, name := range names {
		g.Eventually(func(g Gomega) {
			g.Expect(getTask(g, ns, name).Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
		}, 5*time.Second, tick).Should(Succeed(), "task %s did not recover within about one interval", name)
	}
}

func TestSlowVendorTimesOutWithAClearMessage(t *testing.T) {
	ns := newNamespace(t)
	spec := apigSpec()
	spec.RequestTimeout = &metav1.Duration{Duration: time.Second}
	createBackend(t, ns, "apig", spec, apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Delay: 3 * time.Second, Phase: vendorsim.Running}, simSucceeded())
	createTask(t, ns, "slow", "apig", id)
	waitForTask(t, ns, "slow", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Message).To(ContainSubstring("no answer within the request timeout"))
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
	})
	waitForPhase(t, ns, "slow", v1alpha1.TaskPhaseSucceeded)
}

func TestBrokenAnswersNeverCrashOrEraseTheStatus(t *testing.T) {
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	broken := map[string]struct {
		step vendorsim.Step
		want string
	}{
		"proxy HTML page":      {vendorsim.Step{HTTPStatus: http.StatusBadGateway, RawBody: "<html><body><h1>502 Bad Gateway</h1></body></html>"}, "HTTP 502 with a body that is not the vendor's error shape"},
		"truncated JSON":       {vendorsim.Step{RawBody: `{"task_id":"x","task_status":"proc`}, "not the documented shape"},
		"empty body":           {vendorsim.Step{RawBody: " "}, "not the documented shape"},
		"body over 8 MiB":      {vendorsim.Step{RawBody: `{"task_result":"` + strings.Repeat("x", 9<<20) + `"}`}, "larger than 8 MiB"},
		"JSON of another API":  {vendorsim.Step{RawBody: `{"kind":"Status","items":[]}`}, "no task_status"},
		"wrong JSON types":     {vendorsim.Step{RawBody: `{"task_status":42,"task_result":{}}`}, "not the documented shape"},
		"invalid UTF-8 binary": {vendorsim.Step{RawBody: "\xff\xfe\x00garbage\x00"}, "not the documented shape"},
	}
	for name, tc := range broken {
		t.Run(name, func(t *testing.T) {
			taskName := strings.ReplaceAll(name, " ", "-")
			taskName = strings.ReplaceAll(taskName, "/", "-")
			id := uniqueTaskID(t)
			// The broken answer three times: the task backs off 1+2+4 s, long enough to be seen.
			sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, tc.step, tc.step, tc.step, simSucceeded())
			createTask(t, ns, strings.ToLower(taskName), "apig", id)
			waitForTask(t, ns, strings.ToLower(taskName), func(g Gomega, task *v1alpha1.AsyncTask) {
				g.Expect(task.Status.Message).To(ContainSubstring(tc.want))
				g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning), "the last good observation is kept")
				g.Expect(task.Status.Message).NotTo(ContainSubstring("\n"), "one line")
				g.Expect(len(task.Status.Message)).To(BeNumerically("<", 400), "bounded")
			})
			waitForPhase(t, ns, strings.ToLower(taskName), v1alpha1.TaskPhaseSucceeded)
		})
	}
}

func TestOperatorKilledMidPollingLosesNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	spec := apigSpec()
	spec.RateLimit = &v1alpha1.RateLimit{QPS: 40, Burst: 40}
	createBackend(t, ns, "apig", spec, apigToken(simToken))
	const n = 200
	ids := make([]string, n)
	idPrefix := uniqueTaskID(t)[:28]
	var wg sync.WaitGroup
	for i := range n {
		ids[i] = fmt.Sprintf("%s%04d", idPrefix, i)
		// Finish after 4 polls: some finish before the kill, most after.
		sim.AddTask(ids[i], vendorsim.Step{Phase: vendorsim.Pending}, vendorsim.Step{Phase: vendorsim.Running},
			vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Running}, simSucceeded())
	}
	stop, _ := startOperator(t, Options{Shard: "crash", FieldOwner: "operator-before-crash"}, false)
	for i := range n {
		wg.Go(func() { createTask(t, ns, fmt.Sprintf("task-%d", i), "apig", ids[i], shardLabel("crash")) })
	}
	wg.Wait()
	g.Eventually(func() int {
		polled := 0
		for _, id := range ids {
			if sim.Polls(id) >= 2 {
				polled++
			}
		}
		return polled
	}, eventually, tick).Should(BeNumerically(">=", n/4), "polling well under way")

	stop()
	phasesAtKill := map[string]v1alpha1.TaskPhase{}
	tasks := &v1alpha1.AsyncTaskList{}
	g.Expect(k8sClient.List(context.Background(), tasks, client.InNamespace(ns))).To(Succeed())
	for _, task := range tasks.Items {
		phasesAtKill[task.Name] = task.Status.Phase
	}
	restarted := time.Now()
	startOperator(t, Options{Shard: "crash", FieldOwner: "operator-after-crash"}, false)

	g.Eventually(func(g Gomega) {
		tasks := &v1alpha1.AsyncTaskList{}
		g.Expect(k8sClient.List(context.Background(), tasks, client.InNamespace(ns))).To(Succeed())
		g.Expect(tasks.Items).To(HaveLen(n), "no task lost")
		for _, task := range tasks.Items {
			g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded), "task %s", task.Name)
		}
	}, 2*eventually, 250*time.Millisecond).Should(Succeed())

	for name, phase := range phasesAtKill {
		if phase == v1alpha1.TaskPhaseSucceeded {
			task := getTask(g, ns, name)
			for _, entry := range task.ManagedFields {
				g.Expect(entry.Manager).NotTo(Equal("operator-after-crash"), "finished task %s was written again after the restart", name)
			}
		}
	}
	polls := map[string]int{}
	for _, id := range ids {
		polls[id] = sim.Polls(id)
	}
	g.Consistently(func(g Gomega) {
		for _, id := range ids {
			g.Expect(sim.Polls(id)).To(Equal(polls[id]), "task %s polled after it finished", id)
		}
	}, 3*time.Second, 250*time.Millisecond).Should(Succeed())
	// The restart's burst of first polls stays within the backend's limit: at most the burst plus one
	// second's worth of its rate in any second.
	g.Expect(sim.MaxRequestsPerSecond(restarted, idPrefix)).To(BeNumerically("<=", 40+40))
}

func TestStatusWriteConflictsLoseNoUpdate(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	steps := []vendorsim.Step{}
	for i := range 8 {
		steps = append(steps, vendorsim.Step{Phase: vendorsim.Running, Message: fmt.Sprint(i)})
	}
	sim.AddTimedTask(id, 500*time.Millisecond, append(steps, simSucceeded())...)
	createTask(t, ns, "contended", "apig", id)

	// Another writer changes the object all the time while the operator writes status.
	for i := range 20 {
		g.Eventually(func() error {
			task := &v1alpha1.AsyncTask{}
			if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "contended"}, task); err != nil {
				return err
			}
			if task.Annotations == nil {
				task.Annotations = map[string]string{}
			}
			task.Annotations[fmt.Sprintf("other-writer/%d", i)] = "x"
			return k8sClient.Update(context.Background(), task)
		}, eventually, 10*time.Millisecond).Should(Succeed())
	}
	task := waitForPhase(t, ns, "contended", v1alpha1.TaskPhaseSucceeded)
	for i := range 20 {
		g.Expect(task.Annotations).To(HaveKey(fmt.Sprintf("other-writer/%d", i)), "the other writer's update was lost")
	}
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
}

func TestDeletingWhilePollsAreInFlight(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	backend := createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	slow := vendorsim.Step{Phase: vendorsim.Running, Delay: 2 * time.Second}
	ids := map[string]string{}
	for _, name := range []string{"deleted-task", "orphaned-by-backend", "orphaned-by-secret"} {
		ids[name] = uniqueTaskID(t) + name
		sim.AddTask(ids[name], vendorsim.Step{Phase: vendorsim.Running}, slow)
		createTask(t, ns, name, "apig", ids[name])
		waitForPhase(t, ns, name, v1alpha1.TaskPhaseRunning)
	}
	inFlight := func(name string) {
		g.Eventually(func() int { return sim.Polls(ids[name]) }, eventually, tick).Should(BeNumerically(">=", 2))
	}

	inFlight("deleted-task")
	g.Expect(k8sClient.Delete(ctx, &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deleted-task"}})).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "deleted-task"}, &v1alpha1.AsyncTask{}))
	}, eventually, tick).Should(BeTrue(), "no finalizer or write keeps a deleted task")

	inFlight("orphaned-by-secret")
	g.Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: backend.Spec.CredentialsSecretRef.Name}})).To(Succeed())
	waitForTask(t, ns, "orphaned-by-secret", func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
		g.Expect(task.Status.Message).To(ContainSubstring("not found"))
	})

	g.Expect(k8sClient.Delete(ctx, backend)).To(Succeed())
	waitForTask(t, ns, "orphaned-by-backend", func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendNotFound)
	})
}

func TestSlowBackendHoldsOnlyItsShareOfWorkers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "slow", apigSpec(), apigToken(simToken))
	createBackend(t, ns, "fast", apigSpec(), apigToken(simToken))
	slowPrefix := uniqueTaskID(t)[:24] + "slow"
	start := time.Now()
	for i := range 12 {
		id := fmt.Sprintf("%s%04d", slowPrefix, i)
		sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running, Delay: 3 * time.Second})
		createTask(t, ns, fmt.Sprintf("slow-%d", i), "slow", id)
	}
	fast := uniqueTaskID(t) + "fast"
	sim.AddTask(fast, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Running}, simSucceeded())
	createTask(t, ns, "fast", "fast", fast)

	waitForPhase(t, ns, "fast", v1alpha1.TaskPhaseSucceeded)
	// The suite's operator runs 16 workers, so one backend may hold at most 4 of them.
	g.Expect(sim.MaxConcurrent(start, slowPrefix)).To(BeNumerically("<=", 4))
	for i := range 12 {
		task := getTask(g, ns, fmt.Sprintf("slow-%d", i))
		g.Expect(task.Status.ConsecutiveErrors).To(BeZero(), "waiting for a worker is not an error")
	}
}

// killAPIServer kills the envtest kube-apiserver the way a crashed or evicted one dies (SIGKILL), and waits
// until it is gone.
func killAPIServer(t *testing.T) {
	t.Helper()
	port := testEnv.ControlPlane.GetAPIServer().Port
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "kube-apiserver" || !slices.Contains(args, "--secure-port="+port) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		NewWithT(t).Eventually(func() error {
			_, err := os.Stat(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil {
				status, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
				if strings.Contains(string(status), "State:\tZ") {
					return nil // a zombie is dead; its parent reaps it
				}
				return fmt.Errorf("kube-apiserver %d still runs", pid)
			}
			return nil
		}, eventually, tick).Should(Succeed())
		return
	}
	t.Fatal("no kube-apiserver on port " + port)
}

func TestOperatorCarriesOnAfterAnAPIServerRestart(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	names := []string{"across-restart-1", "across-restart-2"}
	for _, name := range names {
		id := uniqueTaskID(t) + name
		// Running for about 8 s, then Succeeded: the vendor moves on while the API server is away.
		sim.AddTimedTask(id, 4*time.Second, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Running}, simSucceeded())
		createTask(t, ns, name, "apig", id)
		waitForPhase(t, ns, name, v1alpha1.TaskPhaseRunning)
	}

	killAPIServer(t)
	g.Expect(testEnv.ControlPlane.GetAPIServer().Start()).To(Succeed())

	versions := map[string]string{}
	for _, name := range names {
		task := waitForPhase(t, ns, name, v1alpha1.TaskPhaseSucceeded)
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded)
		versions[name] = task.ResourceVersion
	}
	// Read from the API server itself (a watch resumed across the restart may replay an event).
	g.Consistently(func(g Gomega) {
		for _, name := range names {
			g.Expect(getTask(g, ns, name).ResourceVersion).To(Equal(versions[name]), "task %s written again", name)
		}
	}, 3*time.Second, 250*time.Millisecond).Should(Succeed(), "no status write loop after the restart")
}
