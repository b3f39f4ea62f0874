package workflows

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/operation"
)

// fluxSubmitFile is the example of a Flux Kustomization that applies a task with spec.submit.
const fluxSubmitFile = "flux-submit.yaml"

// submitNamespace holds this file's objects: the example's, and one copy of its task per submitted state.
const submitNamespace = "flux-submit"

// Flux annotations the example relies on (kustomize-controller's apply and prune policies).
const (
	fluxPruneAnnotation = "kustomize.toolkit.fluxcd.io/prune"
	fluxSSAAnnotation   = "kustomize.toolkit.fluxcd.io/ssa"
	fluxForceAnnotation = "kustomize.toolkit.fluxcd.io/force"
)

// submitKustomization is the part of a Flux Kustomization that orders it and decides what it waits for and
// what it may delete or re-create.
type submitKustomization struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Path         string `json:"path"`
		Wait         bool   `json:"wait"`
		Force        bool   `json:"force"`
		Timeout      string `json:"timeout"`
		HealthChecks []any  `json:"healthChecks"`
		DependsOn    []struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"dependsOn"`
	} `json:"spec"`
}

// fluxSubmitExample is flux-submit.yaml: its Kustomizations, and the objects the first one applies.
type fluxSubmitExample struct {
	kustomizations []submitKustomization
	objects        []*unstructured.Unstructured // everything else, in file order
}

func readFluxSubmitExample(t *testing.T) fluxSubmitExample {
	t.Helper()
	all, err := readExample(fluxSubmitFile)
	if err != nil {
		t.Fatal(err)
	}
	var ex fluxSubmitExample
	for _, doc := range bytes.Split(all, []byte("\n---\n")) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("%s: %v", fluxSubmitFile, err)
		}
		if obj == nil { // comments only
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() == "Kustomization" {
			var ks submitKustomization
			if err := yaml.Unmarshal(doc, &ks); err != nil {
				t.Fatal(err)
			}
			ex.kustomizations = append(ex.kustomizations, ks)
			continue
		}
		ex.objects = append(ex.objects, u)
	}
	return ex
}

// only returns the one object of a kind in the example.
func (ex fluxSubmitExample) only(t *testing.T, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, u := range ex.objects {
		if u.GetKind() == kind {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s holds %d %s objects, want 1", fluxSubmitFile, len(found), kind)
	}
	return found[0].DeepCopy()
}

// typed converts an example object into its Go type.
func typed(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

// The import Kustomization waits for everything it applied (the task included), and the routes are applied only
// once it is Ready. Neither may re-create the task: no force.
func TestFluxSubmitRoutesWaitForTheImport(t *testing.T) {
	g := NewWithT(t)
	ex := readFluxSubmitExample(t)
	g.Expect(ex.kustomizations).To(HaveLen(2))
	imp, routes := ex.kustomizations[0], ex.kustomizations[1]

	g.Expect(imp.Spec.Wait).To(BeTrue(), "%s waits for the objects it applied", imp.Metadata.Name)
	g.Expect(imp.Spec.HealthChecks).To(BeEmpty(), "Flux ignores healthChecks when wait is true")
	g.Expect(imp.Spec.Timeout).NotTo(BeEmpty(), "%s says how long the import may take", imp.Metadata.Name)
	for _, ks := range ex.kustomizations {
		g.Expect(ks.Spec.Force).To(BeFalse(), "%s: force re-creates an object whose immutable field changed: a new job", ks.Metadata.Name)
	}

	g.Expect(routes.Spec.DependsOn).To(HaveLen(1))
	dep := routes.Spec.DependsOn[0]
	g.Expect(dep.Name).To(Equal(imp.Metadata.Name), "%s dependsOn the import", routes.Metadata.Name)
	g.Expect(dep.Namespace).To(Or(BeEmpty(), Equal(imp.Metadata.Namespace)))
	g.Expect(routes.Metadata.Namespace).To(Equal(imp.Metadata.Namespace), "a dependsOn without namespace names a Kustomization in its own")
}

// What keeps Flux from starting the job a second time: the task is never pruned, never force-applied, never
// deleted by its TTL, and a person's resolve annotation survives Flux's next apply.
func TestFluxSubmitTaskIsNeverCreatedTwice(t *testing.T) {
	g := NewWithT(t)
	ex := readFluxSubmitExample(t)
	var task v1alpha1.AsyncTask
	typed(t, ex.only(t, "AsyncTask"), &task)

	g.Expect(task.Spec.Submit).NotTo(BeNil(), "the example's task starts its job")
	g.Expect(task.Annotations).To(HaveKeyWithValue(fluxPruneAnnotation, "disabled"))
	g.Expect(task.Annotations).To(HaveKeyWithValue(fluxSSAAnnotation, "Merge"))
	g.Expect(task.Annotations).NotTo(HaveKey(fluxForceAnnotation))
	g.Expect(task.Spec.TTLSecondsAfterFinished).To(BeNil(), "Flux would create the deleted task again")
}

// Every object of the example passes the CRDs' schemas and validation rules on a real API server, with strict
// field validation (an unknown or misspelt field fails); the task names the example's backend, one of its
// operations and the example's ConfigMap; and an edit of spec.submit is refused as immutable, which is what a
// Kustomization without force then reports.
func TestFluxSubmitObjectsPassTheCRDSchemas(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ex := readFluxSubmitExample(t)
	createSubmitNamespace(t)

	var task v1alpha1.AsyncTask
	var backendSpec v1alpha1.TaskBackend
	var cm corev1.ConfigMap
	typed(t, ex.only(t, "AsyncTask"), &task)
	typed(t, ex.only(t, "TaskBackend"), &backendSpec)
	typed(t, ex.only(t, "ConfigMap"), &cm)
	g.Expect(task.Spec.BackendRef.Name).To(Equal(backendSpec.Name))
	g.Expect(backendSpec.Spec.Operations).To(ContainElement(HaveField("Name", task.Spec.Submit.Operation)))
	g.Expect(task.Spec.Submit.BodyFrom).NotTo(BeNil())
	g.Expect(task.Spec.Submit.BodyFrom.ConfigMapKeyRef).NotTo(BeNil())
	g.Expect(task.Spec.Submit.BodyFrom.ConfigMapKeyRef.Name).To(Equal(cm.Name))
	g.Expect(cm.Data).To(HaveKey(task.Spec.Submit.BodyFrom.ConfigMapKeyRef.Key))
	for _, u := range ex.objects {
		g.Expect(u.GetNamespace()).To(Equal(task.Namespace), "%s %s: in the task's namespace", u.GetKind(), u.GetName())
	}

	for _, u := range ex.objects {
		u = u.DeepCopy()
		u.SetNamespace(submitNamespace)
		g.Expect(k8s.Create(ctx, u, client.FieldValidation(metav1.FieldValidationStrict))).To(Succeed(), "%s %s", u.GetKind(), u.GetName())
	}

	live := &v1alpha1.AsyncTask{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: submitNamespace, Name: task.Name}, live)).To(Succeed())
	edited := live.DeepCopy()
	edited.Spec.Submit.BodyFrom.ConfigMapKeyRef.Name = "petstore-openapi-v2"
	err := k8s.Update(ctx, edited)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "an edit of spec.submit is refused: %v", err)
	g.Expect(err.Error()).To(ContainSubstring("submit is immutable"))
}

// The backend's operation, compiled as the operator compiles it (defaults as the API server stored them),
// builds API Gateway's import request from the example's task and ConfigMap (read as the operator reads
// bodyFrom: JSON is decoded, anything else is a string), and reads the job's ID from API Gateway's 202 answer.
func TestFluxSubmitOperationBuildsTheImportRequest(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ex := readFluxSubmitExample(t)
	var task v1alpha1.AsyncTask
	var tb v1alpha1.TaskBackend
	var cm corev1.ConfigMap
	typed(t, ex.only(t, "AsyncTask"), &task)
	typed(t, ex.only(t, "TaskBackend"), &tb)
	typed(t, ex.only(t, "ConfigMap"), &cm)

	// The backend as the API server defaults it.
	tb.Namespace = submitNamespace
	tb.Name = "apig-defaults"
	createSubmitNamespace(t)
	g.Expect(k8s.Create(ctx, &tb)).To(Succeed())
	ops, err := operation.Compile(tb.Spec)
	g.Expect(err).NotTo(HaveOccurred())
	op := ops[task.Spec.Submit.Operation]
	g.Expect(op).NotTo(BeNil())

	file := cm.Data[task.Spec.Submit.BodyFrom.ConfigMapKeyRef.Key]
	g.Expect(json.Valid([]byte(file))).To(BeFalse(), "the OpenAPI file is YAML: the body expression sees it as a string")
	req, err := op.Request(ctx, operation.Task{Body: file, Parameters: task.Spec.Submit.Parameters,
		Namespace: task.Namespace, Name: task.Name, UID: "5f0c6b1e-0000-4000-8000-000000000001"}, "ignored")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(req.Method).To(Equal(http.MethodPost))
	g.Expect(req.Path).To(Equal("/v2/" + tb.Spec.APIGateway.ProjectID + "/apigw/instances/" + tb.Spec.APIGateway.InstanceID + "/openapi/async-import"))

	mediaType, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mediaType).To(Equal("multipart/form-data"))
	fields, files := map[string]string{}, map[string][2]string{}
	parts := multipart.NewReader(bytes.NewReader(req.Body), params["boundary"])
	for {
		part, err := parts.NextPart()
		if err == io.EOF {
			break
		}
		g.Expect(err).NotTo(HaveOccurred())
		content, err := io.ReadAll(part)
		g.Expect(err).NotTo(HaveOccurred())
		if part.FileName() != "" {
			files[part.FormName()] = [2]string{part.FileName(), string(content)}
		} else {
			fields[part.FormName()] = string(content)
		}
	}
	g.Expect(files).To(Equal(map[string][2]string{"file_name": {task.Name + ".yaml", file}}),
		"API Gateway's import takes the definition as the file part file_name")
	g.Expect(fields).To(Equal(map[string]string{"is_create_group": "true"}))

	answer, err := op.Answer(ctx, &backend.Response{StatusCode: http.StatusAccepted,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"task_id":"d9ce8c9eede54b3f841ec324fe0bfdc2"}`)}, "ignored")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(answer).To(Equal(operation.Answer{Accepted: true, TaskID: "d9ce8c9eede54b3f841ec324fe0bfdc2"}))
}

var submitNamespaceOnce sync.Once

func createSubmitNamespace(t *testing.T) {
	t.Helper()
	var err error
	submitNamespaceOnce.Do(func() {
		err = k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: submitNamespace}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// submitState is a status the operator writes on a task with spec.submit: before its job is tracked, one row
// of the contract's Submitted table, as internal/submit/status.go's statusFor writes it (docs/design.md,
// "Starting the job"); once the job is tracked, the tracking statuses with Submitted=True kept.
type submitState struct {
	name      string
	submitted metav1.ConditionStatus // "" on a task not yet observed
	reason    string                 // Submitted's
	phase     v1alpha1.TaskPhase
	// ready is the Ready reason: the Submitted reason until the job is tracked. Ready is True only when
	// Succeeded.
	ready                          string
	reconciling, stalled, finished bool
	message                        string
	// sent: an attempt is on record (status.submission); started: the job's ID is (status.taskID).
	sent, started bool
	// responseStatus is the HTTP status of the vendor's answer to the attempt; 0 when none (or none sent).
	responseStatus int32
	// kstatus is what Flux reads; argoCD what config/argocd/health.lua answers.
	kstatus status.Status
	argoCD  string
}

func (s submitState) taskName() string { return "import-petstore-v1-" + s.name }

const (
	acceptedTaskID = "d9ce8c9eede54b3f841ec324fe0bfdc2"
	attemptKey     = "0b6f4c0c1f3a5e7d9b2c4e6f8a0c2e4f"
)

var submitStates = []submitState{
	{name: "new", kstatus: status.InProgressStatus, argoCD: "Progressing"},

	// Not started yet: waits.
	{name: "queued", submitted: metav1.ConditionUnknown, reason: v1alpha1.ReasonQueued, phase: v1alpha1.TaskPhasePending,
		ready: v1alpha1.ReasonQueued, reconciling: true,
		message: "Waiting for one of 1 running import-api jobs of this backend to finish",
		kstatus: status.InProgressStatus, argoCD: "Progressing"},
	{name: "submitting", submitted: metav1.ConditionUnknown, reason: v1alpha1.ReasonSubmitting, phase: v1alpha1.TaskPhasePending,
		ready: v1alpha1.ReasonSubmitting, reconciling: true, sent: true,
		message: "Sending attempt 1 to start the job",
		kstatus: status.InProgressStatus, argoCD: "Progressing"},
	{name: "operation-not-found", submitted: metav1.ConditionUnknown, reason: v1alpha1.ReasonOperationNotFound, phase: v1alpha1.TaskPhasePending,
		ready: v1alpha1.ReasonOperationNotFound, reconciling: true,
		message: "TaskBackend apig-eu-de has no operation import-api",
		kstatus: status.InProgressStatus, argoCD: "Progressing"},

	// Started, not polled yet: waits.
	{name: "accepted", submitted: metav1.ConditionTrue, reason: v1alpha1.ReasonAccepted, phase: v1alpha1.TaskPhasePending,
		ready: v1alpha1.ReasonPending, reconciling: true, sent: true, started: true, responseStatus: http.StatusAccepted,
		message: "The vendor accepted the job " + acceptedTaskID,
		kstatus: status.InProgressStatus, argoCD: "Progressing"},
	{name: "adopted", submitted: metav1.ConditionTrue, reason: v1alpha1.ReasonAdopted, phase: v1alpha1.TaskPhasePending,
		ready: v1alpha1.ReasonPending, reconciling: true, sent: true, started: true,
		message: "Tracking the job " + acceptedTaskID + " a person named",
		kstatus: status.InProgressStatus, argoCD: "Progressing"},

	// Waits for a person: stalled, not finished.
	{name: "outcome-unknown", submitted: metav1.ConditionUnknown, reason: v1alpha1.ReasonSubmitOutcomeUnknown, phase: v1alpha1.TaskPhasePending,
		ready: v1alpha1.ReasonSubmitOutcomeUnknown, stalled: true, sent: true, responseStatus: http.StatusBadGateway,
		message: "Attempt 1 may have started the job: the answer was 502; set the annotation tasks.asynctask.dev/resolve",
		kstatus: status.FailedStatus, argoCD: "Degraded"},

	// Never started: failed.
	{name: "rejected", submitted: metav1.ConditionFalse, reason: v1alpha1.ReasonSubmitRejected, phase: v1alpha1.TaskPhaseFailed,
		ready: v1alpha1.ReasonSubmitRejected, stalled: true, finished: true, sent: true, responseStatus: http.StatusBadRequest,
		message: "APIG.2001: The request parameters must be specified,parameterName:file_name",
		kstatus: status.FailedStatus, argoCD: "Degraded"},
	{name: "unsendable", submitted: metav1.ConditionFalse, reason: v1alpha1.ReasonTaskFailed, phase: v1alpha1.TaskPhaseFailed,
		ready: v1alpha1.ReasonTaskFailed, stalled: true, finished: true,
		message: "spec.submit.parameters.projectID is set by the backend (spec.apiGateway.projectID)",
		kstatus: status.FailedStatus, argoCD: "Degraded"},
	{name: "abandoned", submitted: metav1.ConditionFalse, reason: v1alpha1.ReasonSubmitAbandoned, phase: v1alpha1.TaskPhaseFailed,
		ready: v1alpha1.ReasonSubmitAbandoned, stalled: true, finished: true, sent: true,
		message: "A person abandoned the job",
		kstatus: status.FailedStatus, argoCD: "Degraded"},

	// Tracked: as any task, Submitted=True kept.
	{name: "running", submitted: metav1.ConditionTrue, reason: v1alpha1.ReasonAccepted, phase: v1alpha1.TaskPhaseRunning,
		ready: v1alpha1.ReasonRunning, reconciling: true, sent: true, started: true, responseStatus: http.StatusAccepted,
		message: "processing",
		kstatus: status.InProgressStatus, argoCD: "Progressing"},
	{name: "succeeded", submitted: metav1.ConditionTrue, reason: v1alpha1.ReasonAccepted, phase: v1alpha1.TaskPhaseSucceeded,
		ready: v1alpha1.ReasonSucceeded, finished: true, sent: true, started: true, responseStatus: http.StatusAccepted,
		message: "Imported 1 API",
		kstatus: status.CurrentStatus, argoCD: "Healthy"},
	{name: "job-failed", submitted: metav1.ConditionTrue, reason: v1alpha1.ReasonAccepted, phase: v1alpha1.TaskPhaseFailed,
		ready: v1alpha1.ReasonTaskFailed, stalled: true, finished: true, sent: true, started: true, responseStatus: http.StatusAccepted,
		message: "APIG.3603: The input data is too long",
		kstatus: status.FailedStatus, argoCD: "Degraded"},
}

var (
	submitTasksOnce sync.Once
	submitTasksErr  error
)

// createSubmitTasks creates one copy of the example's task per submitted state and writes its status through
// the status subresource, as the operator would; no operator runs.
func createSubmitTasks(t *testing.T) {
	t.Helper()
	createSubmitNamespace(t)
	var base v1alpha1.AsyncTask
	typed(t, readFluxSubmitExample(t).only(t, "AsyncTask"), &base)
	submitTasksOnce.Do(func() {
		ctx := context.Background()
		for _, s := range submitStates {
			task := base.DeepCopy()
			task.Namespace, task.Name = submitNamespace, s.taskName()
			if submitTasksErr = k8s.Create(ctx, task); submitTasksErr != nil {
				return
			}
			if s.submitted == "" {
				continue
			}
			setSubmitStatus(task, s)
			if submitTasksErr = k8s.Status().Update(ctx, task); submitTasksErr != nil {
				return
			}
		}
	})
	if submitTasksErr != nil {
		t.Fatal("creating the submitted tasks:", submitTasksErr)
	}
}

// setSubmitStatus fills in the status of a state, conditions in the operator's order (Ready, Stalled,
// Reconciling, Finished, Submitted), each with the task's message as statusFor writes them.
func setSubmitStatus(task *v1alpha1.AsyncTask, s submitState) {
	now := metav1.Now()
	st := &task.Status
	st.ObservedGeneration = task.Generation
	st.Phase, st.Message = s.phase, s.message
	if s.started {
		st.TaskID = acceptedTaskID
	}
	if s.sent {
		st.Submission = &v1alpha1.SubmissionStatus{Attempt: 1, IdempotencyKey: attemptKey, SentTime: &now, ResponseStatus: s.responseStatus}
		if s.started {
			st.Submission.AcceptedTime = &now
		}
	}
	if s.finished {
		st.CompletionTime = &now
	}
	set := func(typ string, status metav1.ConditionStatus, reason string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason,
			Message: s.message, ObservedGeneration: task.Generation})
	}
	readyStatus := metav1.ConditionFalse
	if s.phase == v1alpha1.TaskPhaseSucceeded {
		readyStatus = metav1.ConditionTrue
	}
	set(v1alpha1.ConditionReady, readyStatus, s.ready)
	if s.stalled {
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue, s.ready)
	}
	if s.reconciling {
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, s.ready)
	}
	if s.finished {
		set(v1alpha1.ConditionFinished, metav1.ConditionTrue, s.ready)
	}
	set(v1alpha1.ConditionSubmitted, s.submitted, s.reason)
}

// liveSubmitTask reads a state's task back from the API server as unstructured, as Flux sees it.
func liveSubmitTask(t *testing.T, s submitState) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("AsyncTask"))
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: submitNamespace, Name: s.taskName()}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// Flux's health check (kstatus) and Argo CD's (config/argocd/health.lua) wait while the job is queued, being
// sent, waiting for its operation, or started and running; pass once it succeeded; and fail at once when the
// vendor refused it, it could not be sent as written, a person abandoned it, the job failed, or the outcome of
// the send is unknown (Stalled: the task waits for a person).
func TestGitOpsToolsWaitOnASubmittedTaskUntilItsJobSucceeded(t *testing.T) {
	createSubmitTasks(t)
	script, err := os.ReadFile(filepath.Join("..", "..", "config", "argocd", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range submitStates {
		t.Run(s.name, func(t *testing.T) {
			g := NewWithT(t)
			live := liveSubmitTask(t, s)
			res, err := status.Compute(live)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Status).To(Equal(s.kstatus), "kstatus of a %s task: %s", s.name, res.Message)
			g.Expect(argoCDHealth(t, string(script), live)).To(Equal(s.argoCD), "Argo CD health of a %s task", s.name)
		})
	}
}

// argoCDHealth runs a health script as Argo CD does (as internal/controller/gitops_test.go does): a sandbox with
// only the package, base and table libraries, the object as the Lua table obj; it returns hs.status.
func argoCDHealth(t *testing.T, script string, obj *unstructured.Unstructured) string {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		t.Fatalf("running the health check: %v", err)
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health check returned %s, not a table", l.Get(-1).Type())
	}
	return hs.RawGetString("status").String()
}

// toLua converts an unstructured value to Lua as Argo CD does.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for k, item := range v {
			tbl.RawSetString(k, toLua(l, item))
		}
		return tbl
	default:
		return lua.LNil
	}
}

// findWaitingForAPerson lists the tasks whose start request needs a person's answer, with kubectl alone
// (docs/gitops.md shows it).
const findWaitingForAPerson = `kubectl get atask -A -o jsonpath='{range .items[*]}{.metadata.namespace}{"/"}{.metadata.name}{" "}{.status.conditions[?(@.type=="Submitted")].reason}{"\n"}{end}' | grep -w SubmitOutcomeUnknown`

// kubectl wait --for=condition=Submitted returns once the job was started (Accepted or Adopted) and stays met
// while it is tracked, however it ends; a task never started is waited for until the timeout. A task waiting
// for a person is Stalled, not Finished. The documented command finds that task, and only that one.
func TestKubectlSeesWhetherTheJobWasStarted(t *testing.T) {
	createSubmitTasks(t)
	kubectl := kubectlIn(t, submitNamespace)
	for _, s := range submitStates {
		out, err := kubectl("kubectl wait --for=condition=Submitted --timeout=0s atask/" + s.taskName())
		if s.submitted == metav1.ConditionTrue {
			if err != nil {
				t.Errorf("%s: kubectl wait --for=condition=Submitted failed: %v\n%s", s.name, err, out)
			}
			continue
		}
		if err == nil || !strings.Contains(out, "condition not met") {
			t.Errorf("%s: kubectl wait --for=condition=Submitted should time out (condition not met): %v\n%s", s.name, err, out)
		}
	}

	// Waiting for a person is stalled, not finished.
	unknown := "atask/import-petstore-v1-outcome-unknown"
	if out, err := kubectl("kubectl wait --for=condition=Stalled --timeout=0s " + unknown); err != nil {
		t.Errorf("kubectl wait --for=condition=Stalled on a task waiting for a person: %v\n%s", err, out)
	}
	if out, err := kubectl("kubectl wait --for=condition=Finished --timeout=0s " + unknown); err == nil || !strings.Contains(out, "condition not met") {
		t.Errorf("kubectl wait --for=condition=Finished on a task waiting for a person should time out: %v\n%s", err, out)
	}

	g := NewWithT(t)
	gitops, err := os.ReadFile(filepath.Join("..", "..", "docs", "gitops.md"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(gitops)).To(ContainSubstring(findWaitingForAPerson), "docs/gitops.md shows the command tested here")
	out, err := kubectl(findWaitingForAPerson)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Fields(out)).To(Equal([]string{submitNamespace + "/import-petstore-v1-outcome-unknown", v1alpha1.ReasonSubmitOutcomeUnknown}))
}

// kubectlIn returns a function that runs a shell command with the real kubectl on PATH, pointed at the
// control plane with namespace as its default, and returns its combined output.
func kubectlIn(t *testing.T, namespace string) func(command string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := clientcmd.Load(kubeCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts[cfg.CurrentContext].Namespace = namespace
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	return func(command string) (string, error) {
		cmd := exec.Command("sh", "-c", command)
		cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
			"KUBECONFIG="+kubeconfig, "HOME="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}
