package cli

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// newHourlyBackend creates a Network Insight TaskBackend "hourly" polled once an hour: after a task's first
// poll, only a repoll can cause another. Its requests may take 5 minutes: a vendor that holds its answer back
// holds the poll past any test's own timeout.
func newHourlyBackend(t *testing.T, ns string) {
	t.Helper()
	must(t, k8s.Create(context.Background(), &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hourly"},
		Spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight, URL: simURL,
			PollInterval:         &metav1.Duration{Duration: time.Hour},
			RequestTimeout:       &metav1.Duration{Duration: 5 * time.Minute},
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: "credentials"}}}))
}

func running(progress int) vendorsim.Step {
	return vendorsim.Step{Phase: vendorsim.Running, Progress: progress}
}

// hasProgress is a waitFor condition: the task's progress is p.
func hasProgress(p int32) func(*v1alpha1.AsyncTask) bool {
	return func(task *v1alpha1.AsyncTask) bool { return task.Status.Progress != nil && *task.Status.Progress == p }
}

func TestRepollPollsOnceAndPrintsTheNewState(t *testing.T) {
	ns := newNamespace(t)
	newHourlyBackend(t, ns)
	task := newTask(t, ns, "import", "hourly", running(10), running(40))
	waitFor(t, task, hasProgress(10))
	if n := sim.Polls(task.Spec.TaskID); n != 1 {
		t.Fatalf("%d polls before the repoll, want 1", n)
	}

	res := run(context.Background(), "repoll", "import", "-n", ns)
	if res.code != ExitOK {
		t.Fatalf("exit %d; stdout %s; stderr %s", res.code, res.stdout, res.stderr)
	}
	if res.stdout != "import: Running 40%\n" {
		t.Errorf("stdout %q, want the new state", res.stdout)
	}
	if n := sim.Polls(task.Spec.TaskID); n != 2 {
		t.Errorf("%d polls, want exactly one more for the repoll", n)
	}
	got := &v1alpha1.AsyncTask{}
	must(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(task), got))
	requested := got.Annotations[v1alpha1.AnnotationRequestedAt]
	if _, err := time.Parse(time.RFC3339Nano, requested); err != nil || got.Status.LastHandledRequestedAt != requested {
		t.Errorf("annotation %q, lastHandledRequestedAt %q: want the same RFC 3339 time", requested, got.Status.LastHandledRequestedAt)
	}
}

func TestRepollLeavesFinishedTasksAlone(t *testing.T) {
	ns := newNamespace(t)
	task := newTask(t, ns, "done", "to", vendorsim.Step{Phase: vendorsim.Succeeded})
	waitFor(t, task, (*v1alpha1.AsyncTask).IsFinished)

	res := run(context.Background(), "repoll", "done", "-n", ns)
	if res.code != ExitOK || res.stdout != "done: finished (Succeeded), not polled\n" {
		t.Errorf("exit %d, stdout %q", res.code, res.stdout)
	}
	got := &v1alpha1.AsyncTask{}
	must(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(task), got))
	if v, ok := got.Annotations[v1alpha1.AnnotationRequestedAt]; ok {
		t.Errorf("requestedAt set to %q on a finished task", v)
	}
}

func TestRepollAllAsksForEveryUnfinishedTask(t *testing.T) {
	ns := newNamespace(t)
	newHourlyBackend(t, ns)
	a := newTask(t, ns, "a", "hourly", running(10), running(20))
	b := newTask(t, ns, "b", "hourly", running(50), running(60))
	done := newTask(t, ns, "done", "to", vendorsim.Step{Phase: vendorsim.Succeeded})
	waitFor(t, a, hasProgress(10))
	waitFor(t, b, hasProgress(50))
	waitFor(t, done, (*v1alpha1.AsyncTask).IsFinished)

	res := run(context.Background(), "repoll", "--all", "-n", ns)
	if res.code != ExitOK {
		t.Fatalf("exit %d; stdout %s; stderr %s", res.code, res.stdout, res.stderr)
	}
	if want := "a: Running 20%\nb: Running 60%\n"; res.stdout != want {
		t.Errorf("stdout %q, want %q (the finished task is not listed)", res.stdout, want)
	}
	for _, task := range []*v1alpha1.AsyncTask{a, b} {
		if n := sim.Polls(task.Spec.TaskID); n != 2 {
			t.Errorf("%s: %d polls, want 2", task.Name, n)
		}
	}
}

func TestRepollExitCodes(t *testing.T) {
	ns := newNamespace(t)
	newHourlyBackend(t, ns)
	task := newTask(t, ns, "import", "hourly", running(10), running(30))
	waitFor(t, task, hasProgress(10))

	for name, tc := range map[string]struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		"a missing task among others": {args: []string{"repoll", "nothing-here", "import"}, code: ExitNotFound,
			stdout: "nothing-here: not found\nimport: Running 30%\n", stderr: "1 task not found or cannot be read"},
		"no task":           {args: []string{"repoll"}, code: ExitFailed, stderr: "give one or more task names, or --all"},
		"names and --all":   {args: []string{"repoll", "import", "--all"}, code: ExitFailed, stderr: "not both"},
		"-A without --all":  {args: []string{"repoll", "import", "-A"}, code: ExitFailed, stderr: "-A goes with --all"},
		"an unknown option": {args: []string{"repoll", "--every"}, code: ExitFailed, stderr: "unknown flag"},
	} {
		t.Run(name, func(t *testing.T) {
			res := run(context.Background(), append(tc.args, "-n", ns)...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.stderr) || (tc.stdout != "" && res.stdout != tc.stdout) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", res.code, res.stdout, res.stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestRepollTimesOutWhenTheOperatorDoesNotPoll(t *testing.T) {
	ns := newNamespace(t)
	newHourlyBackend(t, ns)
	// The vendor holds its answer for an hour: the operator's first poll is still waiting when repoll asks.
	task := newTask(t, ns, "stuck", "hourly", vendorsim.Step{Phase: vendorsim.Running, Delay: time.Hour})
	eventually(t, func() bool { return sim.Polls(task.Spec.TaskID) == 1 }, func() string { return "the first poll" })

	res := run(context.Background(), "repoll", "stuck", "-n", ns, "--timeout", "1s")
	if res.code != ExitTimeout || res.stdout != "stuck: not polled within 1s\n" ||
		!strings.Contains(res.stderr, "the operator did not poll 1 task within 1s") {
		t.Errorf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

// A task whose job the operator has not started yet is not polled, so repoll does not ask.
func TestRepollSkipsATaskWaitingForAPerson(t *testing.T) {
	ns := newNamespace(t)
	path := newJobBackend(t, ns)
	sim.InjectStartFaults(path, 1, vendorsim.Fault{Status: 500, Create: true})
	task := newSubmitTask(t, ns, "render")
	waitFor(t, task, (*v1alpha1.AsyncTask).SubmitOutcomeUnknown)

	res := run(context.Background(), "repoll", "render", "-n", ns)
	if res.code != ExitOK || res.stdout != "render: job not started (SubmitOutcomeUnknown), not polled\n" {
		t.Errorf("exit %d, stdout %q", res.code, res.stdout)
	}
}

// repoll and resolve print a task's state; a vendor's message must not drive the terminal.
func TestStateLineKeepsVendorControlCharactersOut(t *testing.T) {
	task := &v1alpha1.AsyncTask{Status: v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseRunning,
		Progress: ptr.To[int32](40), Message: "copying\x1b[2J\x1b[31m done\r\nnext"}}
	got := stateLine(task)
	if strings.ContainsFunc(got, unicode.IsControl) {
		t.Fatalf("stateLine = %q: holds control characters", got)
	}
	if want := "Running 40%: copying [2J [31m done  next"; got != want {
		t.Fatalf("stateLine = %q, want %q", got, want)
	}
}
