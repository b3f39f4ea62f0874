package cli

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// waitingForAPerson starts a task whose start request the vendor takes (it creates the job) but answers 500:
// without an idempotency key, the task waits in SubmitOutcomeUnknown. It returns the job's ID and the queue's
// path.
func waitingForAPerson(t *testing.T, ns, name string) (jobID, path string) {
	t.Helper()
	path = newJobBackend(t, ns)
	sim.InjectStartFaults(path, 1, vendorsim.Fault{Status: 500, Create: true})
	waitFor(t, newSubmitTask(t, ns, name), (*v1alpha1.AsyncTask).SubmitOutcomeUnknown)
	jobs := sim.JobIDs(path)
	if len(jobs) != 1 {
		t.Fatalf("jobs created: %v, want 1", jobs)
	}
	return jobs[0], path
}

func getTask(t *testing.T, ns, name string) *v1alpha1.AsyncTask {
	t.Helper()
	task := &v1alpha1.AsyncTask{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, task))
	return task
}

func TestResolveAdoptTracksTheJob(t *testing.T) {
	ns := newNamespace(t)
	jobID, path := waitingForAPerson(t, ns, "render")

	res := run(context.Background(), "resolve", "render", "--adopt", jobID, "-n", ns)
	if res.code != ExitOK {
		t.Fatalf("exit %d; stdout %s; stderr %s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"render: Submitted True (Adopted)", "task ID:  " + jobID} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("no %q in:\n%s", want, res.stdout)
		}
	}
	task := getTask(t, ns, "render")
	if task.Status.TaskID != jobID || !task.SubmitAccepted() {
		t.Errorf("status.taskID %q, Submitted %v; want the adopted job %s", task.Status.TaskID, task.SubmittedCondition(), jobID)
	}
	if _, ok := task.Annotations[v1alpha1.AnnotationResolve]; ok {
		t.Error("the resolve annotation is still there")
	}
	waitFor(t, task, func(task *v1alpha1.AsyncTask) bool { return task.Status.Phase == v1alpha1.TaskPhaseSucceeded })
	if n := sim.StartRequests(path); n != 1 {
		t.Errorf("%d start requests, want 1: adopting sends nothing", n)
	}
}

func TestResolveResubmitStartsTheJobAgain(t *testing.T) {
	ns := newNamespace(t)
	_, path := waitingForAPerson(t, ns, "render")

	res := run(context.Background(), "resolve", "render", "--resubmit", "-n", ns)
	if res.code != ExitOK {
		t.Fatalf("exit %d; stdout %s; stderr %s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "render: Submitted True (Accepted)") || !strings.Contains(res.stdout, "attempt:  2") {
		t.Errorf("stdout:\n%s", res.stdout)
	}
	if n := sim.StartRequests(path); n != 2 {
		t.Errorf("%d start requests, want a second one", n)
	}
	jobs := sim.JobIDs(path)
	if task := getTask(t, ns, "render"); len(jobs) != 2 || task.Status.TaskID != jobs[1] {
		t.Errorf("status.taskID %q, jobs %v: want the second job", task.Status.TaskID, jobs)
	}
}

func TestResolveAbandonFailsTheTask(t *testing.T) {
	ns := newNamespace(t)
	_, path := waitingForAPerson(t, ns, "render")

	res := run(context.Background(), "resolve", "render", "--abandon", "-n", ns)
	if res.code != ExitOK {
		t.Fatalf("exit %d; stdout %s; stderr %s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "render: Submitted False (SubmitAbandoned)") || !strings.Contains(res.stdout, "state:    Failed") {
		t.Errorf("stdout:\n%s", res.stdout)
	}
	task := getTask(t, ns, "render")
	finished := task.FinishedCondition()
	if task.Status.Phase != v1alpha1.TaskPhaseFailed || finished == nil || finished.Status != metav1.ConditionTrue ||
		finished.Reason != v1alpha1.ReasonSubmitAbandoned {
		t.Errorf("phase %s, Finished %v: want Failed, SubmitAbandoned", task.Status.Phase, finished)
	}
	if n := sim.StartRequests(path); n != 1 {
		t.Errorf("%d start requests, want 1", n)
	}
}

func TestResolveRefusesATaskNotWaitingForAPerson(t *testing.T) {
	ns := newNamespace(t)
	task := newTask(t, ns, "import", "vrni", running(40))
	waitFor(t, task, hasProgress(40))

	for name, tc := range map[string]struct {
		args   []string
		code   int
		stderr string
	}{
		"a task with spec.taskID": {args: []string{"resolve", "import", "--abandon"}, code: ExitFailed,
			stderr: "asynctask import is not waiting for a person to resolve its submission: it has spec.taskID"},
		"a missing task":       {args: []string{"resolve", "nothing-here", "--resubmit"}, code: ExitNotFound, stderr: "not found"},
		"no answer":            {args: []string{"resolve", "import"}, code: ExitFailed, stderr: "at least one of the flags in the group [adopt resubmit abandon] is required"},
		"two answers":          {args: []string{"resolve", "import", "--resubmit", "--abandon"}, code: ExitFailed, stderr: "if any flags in the group [adopt resubmit abandon] are set none of the others can be"},
		"an empty ID to adopt": {args: []string{"resolve", "import", "--adopt", ""}, code: ExitFailed, stderr: "--adopt needs the vendor's job ID"},
	} {
		t.Run(name, func(t *testing.T) {
			res := run(context.Background(), append(tc.args, "-n", ns)...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d, %q", res.code, res.stderr, tc.code, tc.stderr)
			}
		})
	}
	if _, ok := getTask(t, ns, "import").Annotations[v1alpha1.AnnotationResolve]; ok {
		t.Error("the resolve annotation was set on a task that does not wait for a person")
	}
}
