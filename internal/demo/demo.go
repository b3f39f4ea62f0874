// Package demo runs the operator's main job on an embedded default: a local control plane (etcd and
// kube-apiserver from bin/), the CRDs, the vendor simulator with a handful of scripted tasks, and the manager,
// and shows the tasks move until they settle. Some tasks track jobs started elsewhere (spec.taskID); others
// start their job themselves (spec.submit): four through a queue of two, one on ZStack, and one whose start
// has an unknown outcome that the demo resolves as a person would. `make demo` runs it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/controller"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// Options configure a demo run.
type Options struct {
	// RepoRoot holds bin/ (the control plane binaries) and config/crd/bases.
	RepoRoot string
	// Out receives the live view.
	Out io.Writer
	// ExitWhenSettled ends the run once every task finished, instead of waiting for ctx to end.
	ExitWhenSettled bool
	// SettleTimeout bounds the wait for the tasks to finish.
	SettleTimeout time.Duration
	// AfterSettled, when set, is called with the kubeconfig path while everything still runs.
	AfterSettled func(kubeconfig string) error
}

const demoNamespace = "demo"

// Run starts everything, shows the tasks until they settle, then waits for ctx (Ctrl-C) unless
// ExitWhenSettled. Every process it started is stopped before it returns.
func Run(ctx context.Context, opts Options) (err error) {
	out := opts.Out
	bin := filepath.Join(opts.RepoRoot, "bin")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(opts.RepoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: bin,
	}
	fmt.Fprintln(out, "Starting the local control plane (etcd, kube-apiserver) ...")
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the local control plane from %s (run `make demo`, which builds it): %w", bin, err)
	}
	defer func() {
		fmt.Fprintln(out, "Stopping the control plane ...")
		err = errors.Join(err, env.Stop())
	}()
	kubeconfig, err := writeKubeconfig(env, filepath.Join(bin, "demo"))
	if err != nil {
		return err
	}

	sim := vendorsim.New(vendorsim.Credentials{Token: demoToken, Username: demoUser, Password: demoPassword})
	listener, err := net.Listen("tcp", "127.0.0.1:0") // any free port: a second demo or a busy port is no problem
	if err != nil {
		return fmt.Errorf("starting the vendor simulator: %w", err)
	}
	simServer := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = simServer.Serve(listener) }()
	defer func() { _ = simServer.Close() }()
	simURL := "http://" + listener.Addr().String()
	fmt.Fprintf(out, "Vendor simulator at %s\n", simURL)

	mgrOptions, err := controller.ManagerOptions(controller.Options{}, nil)
	if err != nil {
		return err
	}
	scheme := mgrOptions.Scheme
	mgr, err := ctrl.NewManager(cfg, mgrOptions)
	if err != nil {
		return err
	}
	mgrCtx, stopManager := context.WithCancel(ctx)
	defer stopManager()
	if err := controller.SetupWithManager(mgrCtx, mgr, controller.Options{}.WithLoopbackAllowed()); err != nil {
		return err
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() { stopManager(); <-mgrDone }() //nolint:errcheck // stopped on purpose: its error says only that

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := createDemoObjects(ctx, c, sim, simURL); err != nil {
		return err
	}
	fmt.Fprintln(out, "Operator running; tasks applied. Watching them (like `kubectl get asynctasks -w`):")
	go resolveUnknown(ctx, c, sim, out)
	settled := watchUntilSettled(ctx, c, out, opts.SettleTimeout)
	printTable(ctx, c, out)
	if !settled {
		return errors.New("tasks did not settle in time")
	}
	fmt.Fprintf(out, `
Everything settled. The control plane keeps running until Ctrl-C; poke it with:

  export KUBECONFIG=%s
  bin/kubectl get asynctasks -n %s -o wide
  bin/kubectl describe atask -n %s apig-import
  bin/kubectl wait --for=condition=Ready atask/apig-import -n %s
  bin/kubectl wait --for=condition=Stalled atask/apig-conflict -n %s
  bin/kubectl get taskbackends -n %s
  bin/kubectl get atask -n %s render-4 -o jsonpath='{.status.submission}'   # started by the operator

Ctrl-C stops everything this demo started.
`, kubeconfig, demoNamespace, demoNamespace, demoNamespace, demoNamespace, demoNamespace, demoNamespace)
	if opts.AfterSettled != nil {
		if err := opts.AfterSettled(kubeconfig); err != nil {
			return err
		}
	}
	if opts.ExitWhenSettled {
		return nil
	}
	<-ctx.Done()
	return nil
}

// writeKubeconfig writes a kubeconfig for an admin user of the local control plane and returns its path.
func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("creating the demo user: %w", err)
	}
	raw, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, raw, 0o600)
}

// demoTask is one scripted task: its vendor steps, advanced by time so the demo moves at a watchable pace.
type demoTask struct {
	name, backend, taskID string
	steps                 []vendorsim.Step
}

// demoBackend is one vendor endpoint of the demo, at the simulator.
type demoBackend struct {
	name   string
	spec   v1alpha1.TaskBackendSpec
	secret map[string]string
}

func demoBackends() []demoBackend {
	return []demoBackend{
		{"apig", v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeAPIGateway,
			APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: demoProject, InstanceID: demoInstance},
			Operations: []v1alpha1.Operation{{Name: "import-api", ContentType: v1alpha1.ContentTypeMultipart,
				Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-import",
				Body: `{"file_name": {"filename": "orders.yaml", "content": task.body.definition}, "is_create_group": "true"}`}}},
			map[string]string{"token": demoToken}},
		{"vrni", v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight},
			map[string]string{"username": demoUser, "password": demoPassword}},
		{"trafficops", v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps, TrafficOps: &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"}},
			map[string]string{"username": demoUser, "password": demoPassword}},
		{"zstack", v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeZStack,
			Operations: []v1alpha1.Operation{{Name: "create-vm", Path: "/zstack/v1/vm-instances"}}},
			map[string]string{"accountName": demoUser, "password": demoPassword}},
		// A JSON job API (the simulator's generic one) whose operation runs at most two jobs at once: the
		// demo's batch of four waits in its queue.
		{"jobs", v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeHTTP,
			HTTP: &v1alpha1.HTTPSettings{Path: "/generic/v1/jobs/{taskID}", Expressions: v1alpha1.HTTPExpressions{
				Phase:    "{'queued': 'Pending', 'running': 'Running', 'succeeded': 'Succeeded', 'failed': 'Failed'}[response.body.status]",
				Progress: "response.body.progress", Message: "response.body.message"}},
			Operations: []v1alpha1.Operation{{Name: "render", Path: demoQueuePath, TaskID: "response.body.id",
				IdempotencyKeyHeader: "Idempotency-Key", MaxRunning: ptr.To[int32](2)}}},
			map[string]string{"token": demoToken}},
	}
}

// demoQueuePath is where the job API's demo jobs are started.
const demoQueuePath = "/generic/v1/queues/demo/jobs"

// apigImportPath is where the API Gateway backend's import operation starts jobs.
const apigImportPath = "/v2/" + demoProject + "/apigw/instances/" + demoInstance + "/openapi/async-import"

const (
	demoProject  = "0605767a3300d5762fb7c0186d9e1779"
	demoInstance = "eddc4d25480b4cd6b512f270a1b8b341"
)

const (
	demoToken    = "demo-token"
	demoUser     = "demo"
	demoPassword = "demo-password"
)

func demoTasks() []demoTask {
	running := func(progress int) vendorsim.Step { return vendorsim.Step{Phase: vendorsim.Running, Progress: progress} }
	return []demoTask{
		{"apig-import", "apig", "d9ce8c9eede54b3f841ec324fe0bfdc2", []vendorsim.Step{
			{Phase: vendorsim.Pending}, running(0), running(0),
			{Phase: vendorsim.Succeeded, Result: `{"success":[{"id":"ee93ce6815f04896b301452982b92222","action":"create","method":"GET","path":"/test1"}],"failure":[],"group_id":"9100ae30705947cc9543d37cd7fb388c"}`}}},
		{"apig-conflict", "apig", "f01d2772ea4944408fa544c8ae5a9999", []vendorsim.Step{
			running(0), {Phase: vendorsim.Failed, Message: "The API group name already exists"}}},
		{"vrni-app-save", "vrni", "TASK_PROGRESS_application.APP_BULK_SAVE.1700000000000.demo", []vendorsim.Step{
			running(10), running(35), running(60), running(85), {Phase: vendorsim.Succeeded, Progress: 100}}},
		{"trafficops-acme-renewal", "trafficops", "42", []vendorsim.Step{
			running(0), running(0), {HTTPStatus: 500}, running(0), {Phase: vendorsim.Succeeded, Message: "ACME renewal complete"}}},
		{"zstack-create-vm", "zstack", "8b1f6c2e5d3a4f7e9c0b1a2d3e4f5a6b", []vendorsim.Step{
			running(20), running(40), running(60), running(80), running(90), running(95), running(99),
			{Phase: vendorsim.Succeeded, Result: `{"inventory":{"uuid":"a1b2c3","name":"demo-vm","state":"Running"}}`}}},
	}
}

// demoSubmission is a task that starts its job itself (spec.submit).
type demoSubmission struct {
	name, backend string
	submit        v1alpha1.SubmitSpec
}

func demoSubmissions() []demoSubmission {
	var out []demoSubmission
	for i := 1; i <= 4; i++ {
		out = append(out, demoSubmission{fmt.Sprintf("render-%d", i), "jobs", v1alpha1.SubmitSpec{Operation: "render",
			Body: &v1alpha1.JSON{Raw: fmt.Appendf(nil, `{"scene":"frame-%d"}`, i)}}})
	}
	return append(out,
		demoSubmission{"zstack-new-vm", "zstack", v1alpha1.SubmitSpec{Operation: "create-vm",
			Body: &v1alpha1.JSON{Raw: []byte(`{"params":{"name":"demo-vm-2","instanceOfferingUuid":"f1c2","imageUuid":"a3b4","l3NetworkUuids":["c5d6"]}}`)}}},
		// The simulator answers this one's import with a 500 after it created the job: the outcome is unknown,
		// and without an idempotency key the task waits for a person, who adopts the job (resolveUnknown).
		demoSubmission{"apig-import-orders", "apig", v1alpha1.SubmitSpec{Operation: "import-api",
			Body: &v1alpha1.JSON{Raw: []byte(`{"definition":"swagger: '2.0'\ninfo: {title: orders, version: '1'}\npaths: {}\n"}`)}}},
	)
}

func createDemoObjects(ctx context.Context, c client.Client, sim *vendorsim.Simulator, simURL string) error {
	sim.SetJobScript(demoQueuePath, vendorsim.JobScript{Every: 2 * time.Second, Steps: []vendorsim.Step{
		{Phase: vendorsim.Running, Progress: 30, Message: "Rendering"}, {Phase: vendorsim.Running, Progress: 70, Message: "Rendering"},
		{Phase: vendorsim.Succeeded, Message: "Rendered"}}})
	sim.SetJobScript("/zstack/v1/vm-instances", vendorsim.JobScript{Every: 2 * time.Second, Steps: []vendorsim.Step{
		{Phase: vendorsim.Running, Progress: 40, Message: "Allocating the host"},
		{Phase: vendorsim.Succeeded, Result: `{"inventory":{"uuid":"d7e8","name":"demo-vm-2","state":"Running"}}`}}})
	sim.SetJobScript(apigImportPath, vendorsim.JobScript{Every: 2 * time.Second, Steps: []vendorsim.Step{
		{Phase: vendorsim.Running}, {Phase: vendorsim.Succeeded}}})
	sim.InjectStartFaults(apigImportPath, 1, vendorsim.Fault{Status: http.StatusInternalServerError, Create: true})
	objects := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}}}
	for _, b := range demoBackends() {
		b.spec.URL = simURL
		b.spec.PollInterval = &metav1.Duration{Duration: time.Second}
		b.spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: b.name + "-credentials"}
		objects = append(objects,
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: b.name + "-credentials"}, StringData: b.secret},
			&v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: b.name}, Spec: b.spec})
	}
	for _, t := range demoTasks() {
		// Scripts move on by time, so the demo runs at a watchable pace whatever the poll interval.
		sim.AddTimedTask(t.taskID, 2*time.Second, t.steps...)
		objects = append(objects, &v1alpha1.AsyncTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: t.name},
			Spec:       v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: t.backend}, TaskID: t.taskID},
		})
	}
	for _, t := range demoSubmissions() {
		objects = append(objects, &v1alpha1.AsyncTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: t.name},
			Spec:       v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: t.backend}, Submit: t.submit.DeepCopy()},
		})
	}
	for _, obj := range objects {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// resolveUnknown plays the person the runbook of SubmitOutcomeUnknown is for: once a task waits for one, it
// looks in the vendor system (the simulator's record of the jobs it created), finds the job, and adopts it
// with the resolve annotation, as `kubectl annotate` would.
func resolveUnknown(ctx context.Context, c client.Client, sim *vendorsim.Simulator, out io.Writer) {
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		task := &v1alpha1.AsyncTask{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: "apig-import-orders"}, task); err != nil || !task.SubmitOutcomeUnknown() {
			continue
		}
		jobs := sim.JobIDs(apigImportPath)
		if len(jobs) == 0 {
			continue
		}
		fmt.Fprintf(out, "%s  A person finds job %s in API Gateway's task list and adopts it:\n"+
			"          kubectl annotate atask/apig-import-orders -n %s %s=%s%s\n",
			time.Now().Format("15:04:05"), jobs[0], demoNamespace, v1alpha1.AnnotationResolve, v1alpha1.ResolveAdoptPrefix, jobs[0])
		patch := client.MergeFrom(task.DeepCopy())
		if task.Annotations == nil {
			task.Annotations = map[string]string{}
		}
		task.Annotations[v1alpha1.AnnotationResolve] = v1alpha1.ResolveAdoptPrefix + jobs[0]
		if err := c.Patch(ctx, task, patch); err != nil {
			fmt.Fprintf(out, "Cannot annotate the task: %v\n", err)
		}
		return
	}
}

// watchUntilSettled prints each task's line when it changes, until every task finished or the timeout.
func watchUntilSettled(ctx context.Context, c client.Client, out io.Writer, timeout time.Duration) bool {
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen := map[string]string{}
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	for {
		tasks := &v1alpha1.AsyncTaskList{}
		if err := c.List(ctx, tasks, client.InNamespace(demoNamespace)); err == nil {
			finished := 0
			for _, t := range tasks.Items {
				line := taskLine(&t)
				if seen[t.Name] != line {
					seen[t.Name] = line
					fmt.Fprintf(out, "%s  %s\n", time.Now().Format("15:04:05"), line)
				}
				if t.Status.Phase.Finished() {
					finished++
				}
			}
			if len(tasks.Items) > 0 && finished == len(tasks.Items) {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-ticker.C:
		}
	}
}

func taskLine(t *v1alpha1.AsyncTask) string {
	progress := ""
	if t.Status.Progress != nil {
		progress = fmt.Sprintf("%d%%", *t.Status.Progress)
	}
	phase := string(t.Status.Phase)
	if phase == "" {
		phase = "-"
	}
	reason := ""
	if c := t.ReadyCondition(); c != nil {
		reason = c.Reason
	}
	return fmt.Sprintf("%-20s %-10s %-21s %-5s %s", t.Name, phase, reason, progress, t.Status.Message)
}

func printTable(ctx context.Context, c client.Client, out io.Writer) {
	tasks := &v1alpha1.AsyncTaskList{}
	if err := c.List(ctx, tasks, client.InNamespace(demoNamespace)); err != nil {
		return
	}
	sort.Slice(tasks.Items, func(i, j int) bool { return tasks.Items[i].Name < tasks.Items[j].Name })
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tBACKEND\tTASK ID\tPHASE\tPROGRESS\tREADY\tMESSAGE")
	for _, t := range tasks.Items {
		progress := ""
		if t.Status.Progress != nil {
			progress = fmt.Sprint(*t.Status.Progress)
		}
		ready := ""
		for _, cond := range t.Status.Conditions {
			if cond.Type == v1alpha1.ConditionReady {
				ready = string(cond.Status) + " (" + cond.Reason + ")"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Spec.BackendRef.Name, t.EffectiveTaskID(), t.Status.Phase, progress, ready,
			strings.TrimSpace(t.Status.Message))
	}
	_ = w.Flush()
}
