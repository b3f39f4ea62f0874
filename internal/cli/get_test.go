package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// newTasksInEveryPhase creates, in a namespace of their own, a task in each phase (Pending for want of its
// backend) and one whose vendor reports no progress, and waits until the operator has seen each where its script holds it.
func newTasksInEveryPhase(t *testing.T) string {
	t.Helper()
	ns := newNamespace(t)
	tasks := []struct {
		task  *v1alpha1.AsyncTask
		phase v1alpha1.TaskPhase
	}{
		// Pending while its backend does not exist.
		{newTask(t, ns, "waiting", "nowhere", vendorsim.Step{Phase: vendorsim.Running}), v1alpha1.TaskPhasePending},
		{newTask(t, ns, "copying", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 40}), v1alpha1.TaskPhaseRunning},
		{newTask(t, ns, "finished", "vrni", vendorsim.Step{Phase: vendorsim.Succeeded}), v1alpha1.TaskPhaseSucceeded},
		{newTask(t, ns, "broken", "vrni", vendorsim.Step{Phase: vendorsim.Failed, Message: "disk full"}), v1alpha1.TaskPhaseFailed},
		{newTask(t, ns, "no-progress", "to", vendorsim.Step{Phase: vendorsim.Running, Message: "Invalidating caches"}), v1alpha1.TaskPhaseRunning},
	}
	for _, tt := range tasks {
		waitFor(t, tt.task, func(task *v1alpha1.AsyncTask) bool { return task.Status.Phase == tt.phase })
	}
	return ns
}

var taskIDPattern = regexp.MustCompile(`TASK_PROGRESS_application\.APP_BULK_SAVE\.\d+\.cli|\b1\d{5}\b`)

func TestGetShowsOneTableOfTasksInEveryPhase(t *testing.T) {
	t.Parallel()
	ns := newTasksInEveryPhase(t)
	got := run(context.Background(), "get", "-n", ns)
	if got.code != ExitOK {
		t.Fatalf("exit code %d; stderr:\n%s", got.code, got.stderr)
	}
	matchGolden(t, "get.golden", normaliseTable(strings.ReplaceAll(got.stdout, ns, "<namespace>")))

	wide := run(context.Background(), "get", "-n", ns, "-o", "wide")
	if wide.code != ExitOK {
		t.Fatalf("-o wide: exit code %d; stderr:\n%s", wide.code, wide.stderr)
	}
	matchGolden(t, "get-wide.golden", normaliseTable(taskIDPattern.ReplaceAllString(strings.ReplaceAll(wide.stdout, ns, "<namespace>"), "<task-id>")))
}

func TestGetPrintsObjectsAsJSONAndYAML(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	newTask(t, ns, "one", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 10})
	newTask(t, ns, "two", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 20})

	var object struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   map[string]any    `json:"metadata"`
		Spec       map[string]any    `json:"spec"`
		Items      []json.RawMessage `json:"items"`
	}
	got := run(context.Background(), "get", "-n", ns, "one", "-o", "json")
	must(t, json.Unmarshal([]byte(got.stdout), &object))
	if object.Kind != "AsyncTask" || object.APIVersion != v1alpha1.GroupVersion.String() || object.Metadata["name"] != "one" ||
		object.Metadata["managedFields"] != nil || object.Spec["backendRef"] == nil {
		t.Errorf("get one -o json: want the AsyncTask object (kind, apiVersion, name, spec, no managedFields), got:\n%s", got.stdout)
	}

	for _, format := range []string{"json", "yaml"} {
		got := run(context.Background(), "get", "-n", ns, "one", "two", "-o", format)
		object.Items = nil
		must(t, yaml.Unmarshal([]byte(got.stdout), &object)) // YAML is a superset of JSON
		if got.code != ExitOK || object.Kind != "List" || object.APIVersion != "v1" || len(object.Items) != 2 {
			t.Errorf("get one two -o %s: want a List of 2 items, got code %d:\n%s", format, got.code, got.stdout)
		}
	}
}

func TestGetSelectsByLabelAndAcrossNamespaces(t *testing.T) {
	t.Parallel()
	label := "cli-test=" + strings.ReplaceAll(t.Name(), "/", "-")
	var namespaces []string
	for range 2 {
		ns := newNamespace(t)
		namespaces = append(namespaces, ns)
		labelled := newTask(t, ns, "labelled", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 30})
		newTask(t, ns, "other", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 30})
		setLabel(t, labelled, "cli-test", strings.ReplaceAll(t.Name(), "/", "-"))
	}

	got := run(context.Background(), "get", "-n", namespaces[0], "-l", label)
	rows := strings.Split(strings.TrimSpace(got.stdout), "\n")
	if got.code != ExitOK || len(rows) != 2 || !strings.HasPrefix(rows[0], "NAME ") || !strings.HasPrefix(rows[1], "labelled ") {
		t.Errorf("get -l: want the header and the labelled task of the namespace, got code %d:\n%s%s", got.code, got.stdout, got.stderr)
	}

	got = run(context.Background(), "get", "-A", "-l", label)
	rows = strings.Split(strings.TrimSpace(got.stdout), "\n")
	if got.code != ExitOK || len(rows) != 3 || !strings.HasPrefix(rows[0], "NAMESPACE ") {
		t.Fatalf("get -A -l: want a NAMESPACE column and the labelled task of each namespace, got code %d:\n%s%s", got.code, got.stdout, got.stderr)
	}
	for i, ns := range namespaces {
		if fields := strings.Fields(rows[i+1]); fields[0] != ns || fields[1] != "labelled" {
			t.Errorf("get -A -l: row %d is %q, want %s/labelled", i+1, rows[i+1], ns)
		}
	}

	got = run(context.Background(), "get", "-n", namespaces[0], "-l", "cli-test=nothing")
	if got.code != ExitOK || got.stdout != "" || !strings.Contains(got.stderr, "No AsyncTasks found") {
		t.Errorf("get -l matching nothing: want exit 0 and a note on stderr, got code %d:\n%s%s", got.code, got.stdout, got.stderr)
	}
}

func TestGetMissingTaskExitsNotFound(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	newTask(t, ns, "here", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 10})

	got := run(context.Background(), "get", "-n", ns, "here", "gone", "lost")
	if got.code != ExitNotFound {
		t.Errorf("exit code %d, want %d (ExitNotFound)", got.code, ExitNotFound)
	}
	if !strings.Contains(got.stderr, `AsyncTasks "gone", "lost" in namespace "`+ns+`" not found`) {
		t.Errorf("stderr does not name the missing tasks:\n%s", got.stderr)
	}
	if !strings.Contains(got.stdout, "here ") {
		t.Errorf("the task that exists is not shown:\n%s", got.stdout)
	}
}

// get -w, not on a terminal: the table, then one line per change, as the task moves.
func TestGetWatchPrintsALinePerChange(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	task := newTask(t, ns, "render", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 10})
	waitFor(t, task, func(task *v1alpha1.AsyncTask) bool { return task.Status.Progress != nil && *task.Status.Progress == 10 })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := start(ctx, "get", "-n", ns, "-w")
	watch.waitForOutput(t, "render   10%")
	// The script moves on only once get has printed the first state, so that every step is seen.
	sim.AddTask(task.Spec.TaskID, vendorsim.Step{Phase: vendorsim.Running, Progress: 40},
		vendorsim.Step{Phase: vendorsim.Running, Progress: 70}, vendorsim.Step{Phase: vendorsim.Succeeded})
	watch.waitForOutput(t, "Succeeded")
	cancel()
	got := watch.result(t)
	if got.code != ExitOK {
		t.Errorf("exit code %d after the watch was ended; stderr:\n%s", got.code, got.stderr)
	}
	matchGolden(t, "get-watch.golden", normaliseTable(got.stdout))

	must(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(task), task))
	if !task.Succeeded() {
		t.Errorf("the task is %s", task.Status.Phase)
	}
}

// setLabel labels a task with a merge patch, which the operator's status writes do not conflict with.
func setLabel(t *testing.T, task *v1alpha1.AsyncTask, key, value string) {
	t.Helper()
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value)))
	must(t, k8s.Patch(context.Background(), task, patch))
}
