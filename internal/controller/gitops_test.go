package controller

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// The GitOps proof: real AsyncTasks in every situation of the contract's condition table (docs/gitops.md),
// read back from the API server as unstructured objects, as Flux, Argo CD and kubectl see them, and judged
// by kstatus (what Flux's healthChecks and `wait` use) and by config/argocd/health.lua run the way Argo CD
// runs a custom health check.

const (
	healthLuaPath     = "../../config/argocd/health.lua"
	argoCDPatchPath   = "../../config/argocd/argocd-cm-patch.yaml"
	argoCDHealthKey   = "resource.customizations.health.tasks.asynctask.dev_AsyncTask"
	gitopsEventually  = 60 * time.Second
	argoHealthy       = "Healthy"
	argoProgressing   = "Progressing"
	argoDegraded      = "Degraded"
	conditionAbsent   = metav1.ConditionStatus("")
	gitopsBackendName = "gitops"
)

// wantCondition is one cell of the contract's table: a status and reason, or conditionAbsent.
type wantCondition struct {
	status metav1.ConditionStatus
	reason string
}

func absent() wantCondition { return wantCondition{status: conditionAbsent} }

func TestGitOps(t *testing.T) {
	script := loadHealthScript(t)
	ns := newNamespace(t)
	createGitOpsBackend(t, ns)

	idBase := uniqueTaskID(t)[:30]
	taskID := func(i int) string { return fmt.Sprintf("%s%02x", idBase, i) }
	running := vendorsim.Step{Phase: vendorsim.Running, Progress: 40, Message: "Importing APIs"}

	cases := map[string]struct {
		// steps scripts the vendor; none leaves the ID unknown to the vendor.
		steps   []vendorsim.Step
		backend string
		mutate  func(*v1alpha1.AsyncTask)
		// phase, ready, reconciling, stalled, finished are the contract's table row.
		phase                                 v1alpha1.TaskPhase
		ready, reconciling, stalled, finished wantCondition
		wantKStatus                           status.Status
		wantHealth                            string
		extra                                 func(g Gomega, st *v1alpha1.AsyncTaskStatus)
	}{
		"pending": {
			steps: []vendorsim.Step{{Phase: vendorsim.Pending}},
			phase: v1alpha1.TaskPhasePending,
			ready: wantCondition{metav1.ConditionFalse, v1alpha1.ReasonPending}, reconciling: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonPending},
			stalled: absent(), finished: absent(),
			wantKStatus: status.InProgressStatus, wantHealth: argoProgressing,
		},
		"running": {
			steps: []vendorsim.Step{running},
			phase: v1alpha1.TaskPhaseRunning,
			ready: wantCondition{metav1.ConditionFalse, v1alpha1.ReasonRunning}, reconciling: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonRunning},
			stalled: absent(), finished: absent(),
			wantKStatus: status.InProgressStatus, wantHealth: argoProgressing,
		},
		"running-backend-failing": {
			steps: []vendorsim.Step{running, {HTTPStatus: 500}},
			phase: v1alpha1.TaskPhaseRunning,
			ready: wantCondition{metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable}, reconciling: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonBackendUnavailable},
			stalled: absent(), finished: absent(),
			wantKStatus: status.InProgressStatus, wantHealth: argoProgressing,
			extra: func(g Gomega, st *v1alpha1.AsyncTaskStatus) { g.Expect(st.ConsecutiveErrors).To(BeNumerically(">", 0)) },
		},
		"backend-not-found": {
			backend: "no-such-backend",
			phase:   v1alpha1.TaskPhasePending,
			ready:   wantCondition{metav1.ConditionFalse, v1alpha1.ReasonBackendNotFound}, reconciling: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonBackendNotFound},
			stalled: absent(), finished: absent(),
			wantKStatus: status.InProgressStatus, wantHealth: argoProgressing,
		},
		"running-progress-deadline": {
			steps: []vendorsim.Step{running},
			mutate: func(task *v1alpha1.AsyncTask) {
				task.Spec.ProgressDeadlineSeconds = ptr.To[int32](1)
				task.Spec.PollInterval = &metav1.Duration{Duration: time.Second}
			},
			phase: v1alpha1.TaskPhaseRunning,
			ready: wantCondition{metav1.ConditionFalse, v1alpha1.ReasonRunning}, reconciling: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonRunning},
			stalled:     wantCondition{metav1.ConditionTrue, v1alpha1.ReasonProgressDeadlineExceeded},
			finished:    absent(),
			wantKStatus: status.FailedStatus, wantHealth: argoDegraded,
		},
		"succeeded": {
			steps: []vendorsim.Step{running, {Phase: vendorsim.Succeeded, Result: `{"apis":3}`}},
			phase: v1alpha1.TaskPhaseSucceeded,
			ready: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonSucceeded}, reconciling: absent(),
			stalled: absent(), finished: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonSucceeded},
			wantKStatus: status.CurrentStatus, wantHealth: argoHealthy,
		},
		"failed": {
			steps: []vendorsim.Step{running, {Phase: vendorsim.Failed, Message: "Swagger file is invalid"}},
			phase: v1alpha1.TaskPhaseFailed,
			ready: wantCondition{metav1.ConditionFalse, v1alpha1.ReasonTaskFailed}, reconciling: absent(),
			stalled: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonTaskFailed}, finished: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonTaskFailed},
			wantKStatus: status.FailedStatus, wantHealth: argoDegraded,
		},
		"failed-deadline-exceeded": {
			steps:  []vendorsim.Step{running},
			mutate: func(task *v1alpha1.AsyncTask) { task.Spec.ActiveDeadlineSeconds = ptr.To[int64](1) },
			phase:  v1alpha1.TaskPhaseFailed,
			ready:  wantCondition{metav1.ConditionFalse, v1alpha1.ReasonDeadlineExceeded}, reconciling: absent(),
			stalled: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonDeadlineExceeded}, finished: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonDeadlineExceeded},
			wantKStatus: status.FailedStatus, wantHealth: argoDegraded,
		},
		"failed-task-not-found": {
			phase: v1alpha1.TaskPhaseFailed,
			ready: wantCondition{metav1.ConditionFalse, v1alpha1.ReasonTaskNotFound}, reconciling: absent(),
			stalled: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonTaskNotFound}, finished: wantCondition{metav1.ConditionTrue, v1alpha1.ReasonTaskNotFound},
			wantKStatus: status.FailedStatus, wantHealth: argoDegraded,
		},
	}

	// Create every task first, so that the slow situations (deadlines, three not-found answers with backoff)
	// develop side by side.
	i := 0
	for name, tc := range cases {
		i++
		id := taskID(i)
		if tc.steps != nil {
			sim.AddTask(id, tc.steps...)
		}
		backendName := gitopsBackendName
		if tc.backend != "" {
			backendName = tc.backend
		}
		var mutate []func(*v1alpha1.AsyncTask)
		if tc.mutate != nil {
			mutate = append(mutate, tc.mutate)
		}
		createTask(t, ns, name, backendName, id, mutate...)
	}

	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			// Wait until the object is in the table's situation, then judge that very object.
			var obj *unstructured.Unstructured
			g.Eventually(func(g Gomega) {
				obj = getUnstructuredTask(g, ns, name)
				st := typedStatus(g, obj)
				g.Expect(st.ObservedGeneration).To(Equal(obj.GetGeneration()), "observedGeneration")
				g.Expect(st.Phase).To(Equal(tc.phase), "phase")
				expectTableCell(g, st.Conditions, v1alpha1.ConditionReady, tc.ready)
				expectTableCell(g, st.Conditions, v1alpha1.ConditionReconciling, tc.reconciling)
				expectTableCell(g, st.Conditions, v1alpha1.ConditionStalled, tc.stalled)
				expectTableCell(g, st.Conditions, v1alpha1.ConditionFinished, tc.finished)
				if tc.extra != nil {
					tc.extra(g, st)
				}
			}, gitopsEventually, tick).Should(Succeed(), "the task never reached the contract's %q row", name)

			res, err := status.Compute(obj)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Status).To(Equal(tc.wantKStatus), "kstatus of %s: %s\nconditions: %v", name, res.Message, conditionsOf(obj))

			health, message := argoCDHealth(t, script, obj)
			g.Expect(health).To(Equal(tc.wantHealth), "Argo CD health of %s (message %q)", name, message)
			g.Expect(message).NotTo(BeEmpty(), "Argo CD health message")
			st := typedStatus(g, obj)
			if ready := condition(st.Conditions, v1alpha1.ConditionReady); ready != nil && tc.stalled.reason != v1alpha1.ReasonProgressDeadlineExceeded {
				g.Expect(message).To(Equal(ready.Message), "the health message is the Ready condition's")
			}

			// The same object describing an older generation (as right after someone edits the spec) is never
			// done for either tool.
			stale := obj.DeepCopy()
			stale.SetGeneration(obj.GetGeneration() + 1)
			res, err = status.Compute(stale)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Status).To(Equal(status.InProgressStatus), "kstatus of a stale %s", name)
			health, _ = argoCDHealth(t, script, stale)
			g.Expect(health).To(Equal(argoProgressing), "Argo CD health of a stale %s", name)
		})
	}
}

// TestGitOpsFreshTask checks the object exactly as the API server stores it at creation, before the operator
// looked: observedGeneration -1 by default, no conditions. It must read as not done, never as Current.
func TestGitOpsFreshTask(t *testing.T) {
	g := NewWithT(t)
	script := loadHealthScript(t)
	ns := newNamespace(t)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "AsyncTask",
		"metadata":   map[string]any{"namespace": ns, "name": "fresh"},
		"spec": map[string]any{
			"backendRef": map[string]any{"name": "not-there-yet"},
			"taskID":     uniqueTaskID(t),
		},
	}}
	// The create answer is the stored object, with the schema's defaults and before any status write.
	g.Expect(k8sClient.Create(context.Background(), obj)).To(Succeed())
	observed, found, err := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue(), "status.observedGeneration is defaulted")
	g.Expect(observed).To(BeEquivalentTo(-1))
	g.Expect(conditionsOf(obj)).To(BeEmpty())

	res, err := status.Compute(obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Status).To(Equal(status.InProgressStatus), "kstatus of a fresh task: %s", res.Message)
	health, _ := argoCDHealth(t, script, obj)
	g.Expect(health).To(Equal(argoProgressing))

	// Without the default (a status with no observedGeneration at all) kstatus would have nothing to compare
	// and call the task Current: that is what the -1 default prevents.
	bare := obj.DeepCopy()
	unstructured.RemoveNestedField(bare.Object, "status")
	res, err = status.Compute(bare)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Status).To(Equal(status.CurrentStatus))
	// The health check does not make that mistake even then.
	health, _ = argoCDHealth(t, script, bare)
	g.Expect(health).To(Equal(argoProgressing))
}

// TestGitOpsArgoCDPatch checks that the argocd-cm patch installs health.lua verbatim under the key Argo CD
// reads for group tasks.asynctask.dev, kind AsyncTask.
func TestGitOpsArgoCDPatch(t *testing.T) {
	g := NewWithT(t)
	script := loadHealthScript(t)
	raw, err := os.ReadFile(filepath.FromSlash(argoCDPatchPath))
	g.Expect(err).NotTo(HaveOccurred())
	var cm corev1.ConfigMap
	g.Expect(yaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096).Decode(&cm)).To(Succeed())
	g.Expect(cm.Kind).To(Equal("ConfigMap"))
	g.Expect(cm.Name).To(Equal("argocd-cm"))
	g.Expect(cm.Data).To(HaveKeyWithValue(argoCDHealthKey, script), "the patch must carry health.lua verbatim")
}

// createGitOpsBackend creates the API Gateway TaskBackend the GitOps tasks use, at the simulator with a fixed token.
func createGitOpsBackend(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gitopsBackendName + "-creds"},
		StringData: map[string]string{"token": simToken},
	}
	if err := k8sClient.Create(ctx, secret); err != nil {
		t.Fatalf("creating Secret: %v", err)
	}
	b := &v1alpha1.TaskBackend{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gitopsBackendName},
		Spec: v1alpha1.TaskBackendSpec{
			Type:                 v1alpha1.BackendTypeAPIGateway,
			URL:                  simURL,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: secret.Name},
			PollInterval:         &metav1.Duration{Duration: time.Second},
			APIGateway:           &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"},
		},
	}
	if err := k8sClient.Create(ctx, b); err != nil {
		t.Fatalf("creating TaskBackend: %v", err)
	}
}

func loadHealthScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(healthLuaPath))
	if err != nil {
		t.Fatalf("reading the Argo CD health check: %v", err)
	}
	return string(b)
}

// getUnstructuredTask reads a task from the API server the way generic tools do: no Go types.
func getUnstructuredTask(g Gomega, ns, name string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("AsyncTask"))
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)).To(Succeed())
	return obj
}

func typedStatus(g Gomega, obj *unstructured.Unstructured) *v1alpha1.AsyncTaskStatus {
	var task v1alpha1.AsyncTask
	g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &task)).To(Succeed())
	return &task.Status
}

// conditionsOf lists the conditions as type=status/reason, in the stored order, for failure messages.
func conditionsOf(obj *unstructured.Unstructured) []string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	out := []string{}
	for _, c := range conds {
		m, _ := c.(map[string]any)
		out = append(out, fmt.Sprintf("%v=%v/%v", m["type"], m["status"], m["reason"]))
	}
	return out
}

func expectTableCell(g Gomega, conds []metav1.Condition, condType string, want wantCondition) {
	if want.status == conditionAbsent {
		g.Expect(condition(conds, condType)).To(BeNil(), "condition %s must be absent", condType)
		return
	}
	expectCondition(g, conds, condType, want.status, want.reason)
}

// argoCDHealth runs a health script as Argo CD does: a sandbox with only the package, base and table
// libraries, the object as the Lua table global `obj` (maps as string-keyed tables, lists as arrays, numbers
// as Lua numbers), and the returned table's status and message.
func argoCDHealth(t *testing.T, script string, obj *unstructured.Unstructured) (health, message string) {
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		t.Fatalf("running the health check: %v", err)
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health check returned %s, not a table", l.Get(-1).Type())
	}
	st, ok := hs.RawGetString("status").(lua.LString)
	if !ok {
		t.Fatalf("hs.status is %s, not a string", hs.RawGetString("status").Type())
	}
	switch string(st) {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		t.Fatalf("hs.status %q is not an Argo CD health status", st)
	}
	if m, ok := hs.RawGetString("message").(lua.LString); ok {
		message = string(m)
	}
	return string(st), message
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
	case int32:
		return lua.LNumber(v)
	case int:
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
