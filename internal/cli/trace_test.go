package cli

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// -update rewrites the golden files. Registered only when no other test file of the package did.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

// matchGolden compares got with testdata/name, or rewrites the file under -update.
func matchGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/cli -run %s -update writes it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", path, diff)
	}
}

var (
	agePattern  = regexp.MustCompile(`\b(\d+[smhdy])+ ago\b`)
	timePattern = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\b`)
)

// normalise replaces what differs from run to run (pairs of old and new, as whole words, in order), every age
// with AGE and every RFC 3339 time with TIME.
func normalise(out string, pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		out = regexp.MustCompile(`\b`+regexp.QuoteMeta(pairs[i])+`\b`).ReplaceAllString(out, pairs[i+1])
	}
	out = timePattern.ReplaceAllString(out, "TIME")
	return agePattern.ReplaceAllString(out, "AGE ago")
}

// expectWidth fails the test when a line of out is wider than trace's 80 columns.
func expectWidth(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if utf8.RuneCountInString(line) > traceWidth {
			t.Errorf("line wider than %d columns: %q", traceWidth, line)
		}
	}
}

// eventsRecorded waits until the object has an event with each reason: the operator records events in the
// background, after the status write a test waits for.
func eventsRecorded(t *testing.T, ns, kind, name string, reasons ...string) {
	t.Helper()
	eventually(t, func() bool {
		list := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return false
		}
		seen := map[string]bool{}
		for _, e := range list.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name {
				seen[e.Reason] = true
			}
		}
		for _, r := range reasons {
			if !seen[r] {
				return false
			}
		}
		return true
	}, func() string { return kind + " " + name + " events " + strings.Join(reasons, ", ") })
}

// backendReady waits until a backend's Ready condition has the reason.
func backendReady(t *testing.T, backend client.Object, reason string) {
	t.Helper()
	eventually(t, func() bool {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(backend), backend); err != nil {
			return false
		}
		var conditions []metav1.Condition
		switch b := backend.(type) {
		case *v1alpha1.TaskBackend:
			conditions = b.Status.Conditions
		case *v1alpha1.ClusterTaskBackend:
			conditions = b.Status.Conditions
		}
		for _, c := range conditions {
			if c.Type == v1alpha1.ConditionReady && c.Reason == reason {
				return true
			}
		}
		return false
	}, func() string { return backend.GetName() + " Ready " + reason })
}

func TestTraceShowsARunningTaskItsBackendAndCredentials(t *testing.T) {
	ns := newNamespace(t)
	task := newTask(t, ns, "import", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 40})
	waitFor(t, task, func(task *v1alpha1.AsyncTask) bool { return task.Status.Progress != nil })
	backendReady(t, &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vrni"}}, v1alpha1.ReasonReady)
	eventsRecorded(t, ns, "AsyncTask", "import", v1alpha1.ReasonRunning)

	res := run(context.Background(), "trace", "import", "-n", ns)
	if res.code != ExitOK {
		t.Fatalf("exit %d, stderr %s", res.code, res.stderr)
	}
	expectWidth(t, res.stdout)
	if strings.Contains(res.stdout, testPassword) || strings.Contains(res.stdout, testUser) {
		t.Errorf("a Secret value is shown:\n%s", res.stdout)
	}
	matchGolden(t, "trace-running.golden", normalise(res.stdout, task.Spec.TaskID, "TASK-ID", ns, "NS", simURL, "SIM-URL"))
}

func TestTraceShowsAClusterBackendThatDoesNotAllowTheNamespace(t *testing.T) {
	ns := newNamespace(t)
	backend := &v1alpha1.ClusterTaskBackend{ObjectMeta: metav1.ObjectMeta{Name: ns + "-shared"}, Spec: v1alpha1.TaskBackendSpec{
		Type: v1alpha1.BackendTypeNetworkInsight, URL: simURL, PollInterval: &metav1.Duration{Duration: time.Second},
		CredentialsSecretRef: &v1alpha1.SecretReference{Namespace: ns, Name: "missing"},
		AllowedNamespaces:    &metav1.LabelSelector{MatchLabels: map[string]string{"team": "billing"}},
	}}
	must(t, k8s.Create(context.Background(), backend))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), backend) })
	task := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "export"}, Spec: v1alpha1.AsyncTaskSpec{
		BackendRef: v1alpha1.BackendReference{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: backend.Name},
		TaskID:     "TASK_PROGRESS_application.APP_BULK_SAVE.not-allowed.cli",
	}}
	must(t, k8s.Create(context.Background(), task))
	waitFor(t, task, func(task *v1alpha1.AsyncTask) bool {
		c := task.ReadyCondition()
		return c != nil && c.Reason == v1alpha1.ReasonBackendNotAllowed
	})
	backendReady(t, backend, v1alpha1.ReasonSecretNotFound)
	eventsRecorded(t, ns, "AsyncTask", "export", v1alpha1.ReasonBackendNotAllowed)

	res := run(context.Background(), "trace", "export", "-n", ns)
	if res.code != ExitOK {
		t.Fatalf("exit %d, stderr %s", res.code, res.stderr)
	}
	expectWidth(t, res.stdout)
	matchGolden(t, "trace-not-allowed.golden", normalise(res.stdout, backend.Name, "SHARED", ns, "NS", simURL, "SIM-URL"))
}

func TestTraceShowsASubmissionWaitingForAPerson(t *testing.T) {
	ns := newNamespace(t)
	path := newJobBackend(t, ns)
	sim.InjectStartFaults(path, 1, vendorsim.Fault{Status: 500, Create: true})
	task := newSubmitTask(t, ns, "render")
	waitFor(t, task, (*v1alpha1.AsyncTask).SubmitOutcomeUnknown)
	backendReady(t, &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "jobs"}}, v1alpha1.ReasonReady)
	eventsRecorded(t, ns, "AsyncTask", "render", v1alpha1.ReasonSubmitOutcomeUnknown)

	res := run(context.Background(), "trace", "render", "-n", ns)
	if res.code != ExitOK {
		t.Fatalf("exit %d, stderr %s", res.code, res.stderr)
	}
	expectWidth(t, res.stdout)
	for _, want := range []string{"SubmitOutcomeUnknown", "kubectl asynctask resolve render -n " + ns + " --adopt <JOB ID>"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("no %q in:\n%s", want, res.stdout)
		}
	}
	got := &v1alpha1.AsyncTask{}
	must(t, k8s.Get(context.Background(), client.ObjectKeyFromObject(task), got))
	matchGolden(t, "trace-submit-unknown.golden", normalise(res.stdout,
		got.Status.Submission.IdempotencyKey, "KEY", path, "QUEUE-PATH", ns, "NS", simURL, "SIM-URL"))
}

func TestTraceSaysWhatItCannotRead(t *testing.T) {
	ns := newNamespace(t)
	newTask(t, ns, "import", "vrni", vendorsim.Step{Phase: vendorsim.Running, Progress: 10})
	orphan := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan"}, Spec: v1alpha1.AsyncTaskSpec{
		BackendRef: v1alpha1.BackendReference{Name: "gone"}, TaskID: "orphan-1"}}
	must(t, k8s.Create(context.Background(), orphan))
	// A user who may read tasks, backends and events, not Secrets.
	const user = "trace-reader"
	ctx := context.Background()
	must(t, k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"asynctasks", "taskbackends"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"list"}},
	}}))
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}))

	var res result
	eventually(t, func() bool {
		res = run(ctx, "trace", "import", "-n", ns, "--as", user)
		return res.code == ExitOK
	}, func() string { return "the Role in force" })
	if !regexp.MustCompile(`(?m)^Credentials Secret ` + ns + `/credentials\n  Secret: +cannot read \(forbidden\)$`).MatchString(res.stdout) {
		t.Errorf("the Secret is not shown as forbidden:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "Backend TaskBackend "+ns+"/vrni") {
		t.Errorf("no backend:\n%s", res.stdout)
	}

	res = run(ctx, "trace", "orphan", "-n", ns)
	if res.code != ExitOK || !regexp.MustCompile(`(?m)^Backend TaskBackend `+ns+`/gone\n  not found$`).MatchString(res.stdout) {
		t.Errorf("exit %d; the missing backend is not shown as not found:\n%s", res.code, res.stdout)
	}
}

func TestTraceOfAMissingTaskExits3(t *testing.T) {
	ns := newNamespace(t)
	res := run(context.Background(), "trace", "nothing-here", "-n", ns)
	if res.code != ExitNotFound || !strings.Contains(res.stderr, "asynctask nothing-here in namespace "+ns+": not found") {
		t.Errorf("exit %d, stderr %q; want %d and not found", res.code, res.stderr, ExitNotFound)
	}
}

// newJobBackend creates an HTTP TaskBackend "jobs" at the simulator's generic job API, with an operation
// "render" that starts jobs on a queue of the namespace's own (so faults injected for it touch no other test),
// without an idempotency key: a start whose outcome is unknown waits for a person. It returns the queue's path.
func newJobBackend(t *testing.T, ns string) string {
	t.Helper()
	path := "/generic/v1/queues/" + ns + "/jobs"
	must(t, k8s.Create(context.Background(), &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "jobs"},
		Spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeHTTP, URL: simURL,
			PollInterval:         &metav1.Duration{Duration: time.Second},
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: "credentials"},
			HTTP: &v1alpha1.HTTPSettings{Path: "/generic/v1/jobs/{taskID}", Expressions: v1alpha1.HTTPExpressions{
				Phase:    "{'queued': 'Pending', 'running': 'Running', 'succeeded': 'Succeeded', 'failed': 'Failed'}[response.body.status]",
				Progress: "response.body.progress", Message: "response.body.message"}},
			Operations: []v1alpha1.Operation{{Name: "render", Path: path, TaskID: "response.body.id"}},
		}}))
	return path
}

// newSubmitTask creates a task that starts its job through the "jobs" backend's "render" operation.
func newSubmitTask(t *testing.T, ns, name string) *v1alpha1.AsyncTask {
	t.Helper()
	task := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.AsyncTaskSpec{
		BackendRef: v1alpha1.BackendReference{Name: "jobs"},
		Submit:     &v1alpha1.SubmitSpec{Operation: "render", Body: &v1alpha1.JSON{Raw: []byte(`{"scene":"` + name + `"}`)}},
	}}
	must(t, k8s.Create(context.Background(), task))
	return task
}

func TestWrapKeepsLinesWithinTheWidth(t *testing.T) {
	for name, tc := range map[string]struct {
		text  string
		width int
		want  []string
	}{
		"short":                  {text: "The task is running", width: 20, want: []string{"The task is running"}},
		"at spaces":              {text: "one two three four", width: 9, want: []string{"one two", "three", "four"}},
		"a word longer than one": {text: "see https://vendor.example.com/jobs/123 now", width: 10, want: []string{"see", "https://ve", "ndor.examp", "le.com/job", "s/123 now"}},
		"control characters":     {text: "red\x1b[31m text\nand\ta bell\a", width: 40, want: []string{"red [31m text and a bell"}},
		"empty":                  {text: "", width: 10, want: []string{""}},
	} {
		if got := wrap(tc.text, tc.width); !cmp.Equal(got, tc.want) {
			t.Errorf("%s: wrap(%q, %d) = %q, want %q", name, tc.text, tc.width, got, tc.want)
		}
	}
}
