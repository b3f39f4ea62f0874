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

// steps repeats a step n times: a task that stays there for n polls (one a second).
func steps(n int, step vendorsim.Step) []vendorsim.Step {
	s := make([]vendorsim.Step, n)
	for i := range s {
		s[i] = step
	}
	return s
}

var (
	succeeded = vendorsim.Step{Phase: vendorsim.Succeeded, Message: "done"}
	failed    = vendorsim.Step{Phase: vendorsim.Failed, Message: "disk full"}
)

// wait, not on a terminal: a line per task, then one per change, then the summary.
func TestWaitPrintsALinePerChangeAndASummary(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	render := newTask(t, ns, "render", "vrni", running(10))
	cdn := newTask(t, ns, "cdn", "to", vendorsim.Step{Phase: vendorsim.Succeeded, Message: "Invalidated"})
	waitFor(t, render, func(task *v1alpha1.AsyncTask) bool { return task.Status.Progress != nil && *task.Status.Progress == 10 })
	waitFor(t, cdn, (*v1alpha1.AsyncTask).Succeeded)

	wait := start(context.Background(), "wait", "-n", ns, "render", "cdn")
	wait.waitForOutput(t, "render Running 10%")
	// The script moves on only once wait has printed the first state, so that every step is seen.
	sim.AddTask(render.Spec.TaskID, running(40), running(70), succeeded)
	got := wait.result(t)
	if got.code != ExitOK {
		t.Errorf("exit code %d, want 0; stderr:\n%s", got.code, got.stderr)
	}
	matchGolden(t, "wait.golden", normaliseTable(got.stdout))
	if strings.ContainsAny(got.stdout, "\x1b\r") {
		t.Errorf("control characters in the output for logs: %q", got.stdout)
	}
}

// Each outcome of wait has its exit code.
func TestWaitExitCodes(t *testing.T) {
	type tasks map[string][]vendorsim.Step
	cases := map[string]struct {
		tasks tasks
		// label labels these tasks wait=me.
		label []string
		args  []string
		// during runs once wait has printed its first lines.
		during func(t *testing.T, ns string)
		want   int
		// after checks the tasks when wait has returned.
		after func(t *testing.T, ns string)
	}{
		"every task succeeds": {
			tasks: tasks{"a": {running(10), succeeded}, "b": {running(20), running(50), succeeded}},
			args:  []string{"a", "b"},
			want:  ExitOK,
		},
		"one fails: exit at once, before the other task finishes": {
			tasks: tasks{"a": {running(10), failed}, "b": append(steps(20, running(10)), succeeded)},
			args:  []string{"a", "b"},
			want:  ExitFailed,
			after: func(t *testing.T, ns string) {
				t.Helper()
				if phase := phaseOf(t, ns, "b"); phase != v1alpha1.TaskPhaseRunning {
					t.Errorf("b is %s when wait returned: wait did not exit at the first failure", phase)
				}
			},
		},
		"--for finished, one failed: exit 1 once all finished": {
			tasks: tasks{"a": {failed}, "b": {running(10), running(50), succeeded}},
			args:  []string{"a", "b", "--for", "finished"},
			want:  ExitFailed,
			after: func(t *testing.T, ns string) {
				t.Helper()
				if phase := phaseOf(t, ns, "b"); phase != v1alpha1.TaskPhaseSucceeded {
					t.Errorf("b is %s when wait returned: wait did not wait for every task to finish", phase)
				}
			},
		},
		"--for finished, every task succeeds": {
			tasks: tasks{"a": {running(10), succeeded}, "b": {succeeded}},
			args:  []string{"a", "b", "--for", "finished"},
			want:  ExitOK,
		},
		"timeout": {
			tasks: tasks{"a": {running(10)}},
			args:  []string{"a", "--timeout", "2s"},
			want:  ExitTimeout,
		},
		"a task does not exist": {
			tasks: tasks{"a": {running(10)}},
			args:  []string{"a", "missing"},
			want:  ExitNotFound,
		},
		"a task is deleted while waiting": {
			tasks: tasks{"a": {running(10)}},
			args:  []string{"a"},
			during: func(t *testing.T, ns string) {
				t.Helper()
				must(t, k8s.Delete(context.Background(), &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a"}}))
			},
			want: ExitNotFound,
		},
		"a selector: the tasks it matches succeed": {
			tasks: tasks{"a": {running(10), succeeded}, "b": {succeeded}, "other": {running(10)}},
			label: []string{"a", "b"},
			args:  []string{"-l", "wait=me"},
			want:  ExitOK,
		},
		"a selector that matches nothing": {
			tasks: tasks{"other": {running(10)}},
			args:  []string{"-l", "wait=me"},
			want:  ExitNotFound,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			for taskName, script := range tc.tasks {
				task := newTask(t, ns, taskName, "vrni", script...)
				for _, l := range tc.label {
					if l == taskName {
						setLabel(t, task, "wait", "me")
					}
				}
			}
			wait := start(context.Background(), append([]string{"wait", "-n", ns}, tc.args...)...)
			if tc.during != nil {
				wait.waitForOutput(t, " eta ")
				tc.during(t, ns)
			}
			got := wait.result(t)
			if got.code != tc.want {
				t.Errorf("exit code %d, want %d; stdout:\n%s\nstderr:\n%s", got.code, tc.want, got.stdout, got.stderr)
			}
			if tc.want != ExitOK && !strings.HasPrefix(got.stderr, "Error: ") {
				t.Errorf("no error message for exit code %d; stderr:\n%s", got.code, got.stderr)
			}
			if tc.after != nil {
				tc.after(t, ns)
			}
		})
	}
}

func phaseOf(t *testing.T, ns, name string) v1alpha1.TaskPhase {
	t.Helper()
	task := &v1alpha1.AsyncTask{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, task))
	return task.Status.Phase
}
