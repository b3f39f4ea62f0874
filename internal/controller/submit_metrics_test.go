package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// The tests of this file need no control plane: the collector reads a fake cache (storeCache), and each test
// names backends of its own, since the counter is the process's.

// storeCache is a manager cache holding the given backends, and tasks in an informer store as
// controller-runtime's informers have one. Anything else it is asked panics (the nil embedded Cache).
type storeCache struct {
	cache.Cache
	tasks      toolscache.Store
	namespaced []v1alpha1.TaskBackend
	clustered  []v1alpha1.ClusterTaskBackend
}

type storeInformer struct {
	cache.Informer
	store toolscache.Store
}

func (i storeInformer) GetStore() toolscache.Store { return i.store }

func (c *storeCache) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	return storeInformer{store: c.tasks}, nil
}

func (c *storeCache) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	switch l := list.(type) {
	case *v1alpha1.TaskBackendList:
		l.Items = append([]v1alpha1.TaskBackend{}, c.namespaced...)
	case *v1alpha1.ClusterTaskBackendList:
		l.Items = append([]v1alpha1.ClusterTaskBackend{}, c.clustered...)
	default:
		panic("unexpected list")
	}
	return nil
}

// submitTask is an AsyncTask of namespace ns on backend ref whose Submitted condition has reason (none when
// ""), in phase.
func submitTask(ns, name string, ref v1alpha1.BackendReference, phase v1alpha1.TaskPhase, status metav1.ConditionStatus, reason string) *v1alpha1.AsyncTask {
	task := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	task.Spec.BackendRef = ref
	task.Spec.Submit = &v1alpha1.SubmitSpec{Operation: "start"}
	task.Status.Phase = phase
	if reason != "" {
		task.Status.Conditions = []metav1.Condition{
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason},
			{Type: v1alpha1.ConditionSubmitted, Status: status, Reason: reason},
		}
	}
	return task
}

// gatherSubmitMetrics scrapes a registry holding only a submitMetrics over c, as the metrics endpoint would.
func gatherSubmitMetrics(g Gomega, c cache.Cache) map[string]*dto.MetricFamily {
	registry := prometheus.NewPedanticRegistry()
	g.Expect(registry.Register(&submitMetrics{cache: c})).To(Succeed())
	families, err := registry.Gather()
	g.Expect(err).NotTo(HaveOccurred(), "consistent families, no series twice")
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	return byName
}

func TestSubmitGaugesCountWaitingTasksPerBackend(t *testing.T) {
	g := NewWithT(t)
	store := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	ns := "submit-gauges"
	vendor := v1alpha1.BackendReference{Name: "vendor"}
	shared := v1alpha1.BackendReference{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: "submit-gauges-shared"}
	for _, task := range []*v1alpha1.AsyncTask{
		submitTask(ns, "queued-1", vendor, v1alpha1.TaskPhasePending, metav1.ConditionUnknown, v1alpha1.ReasonQueued),
		submitTask(ns, "queued-2", vendor, v1alpha1.TaskPhasePending, metav1.ConditionUnknown, v1alpha1.ReasonQueued),
		submitTask(ns, "waits-for-a-person", vendor, v1alpha1.TaskPhasePending, metav1.ConditionUnknown, v1alpha1.ReasonSubmitOutcomeUnknown),
		submitTask(ns, "sending", vendor, v1alpha1.TaskPhasePending, metav1.ConditionUnknown, v1alpha1.ReasonSubmitting),
		submitTask(ns, "no-such-operation", vendor, v1alpha1.TaskPhasePending, metav1.ConditionUnknown, v1alpha1.ReasonOperationNotFound),
		submitTask(ns, "running", vendor, v1alpha1.TaskPhaseRunning, metav1.ConditionTrue, v1alpha1.ReasonAccepted),
		submitTask(ns, "abandoned", vendor, v1alpha1.TaskPhaseFailed, metav1.ConditionFalse, v1alpha1.ReasonSubmitAbandoned),
		// Never the case (a finished task is trimmed of its conditions), but not counted if it were.
		submitTask(ns, "finished", vendor, v1alpha1.TaskPhaseFailed, metav1.ConditionUnknown, v1alpha1.ReasonSubmitOutcomeUnknown),
		submitTask(ns, "not-written-yet", vendor, "", "", ""),
		submitTask("submit-gauges-b", "cluster-unknown", shared, v1alpha1.TaskPhasePending, metav1.ConditionUnknown, v1alpha1.ReasonSubmitOutcomeUnknown),
		submitTask(ns, "gone-backend", v1alpha1.BackendReference{Name: "gone"}, v1alpha1.TaskPhasePending, metav1.ConditionUnknown, v1alpha1.ReasonSubmitOutcomeUnknown),
	} {
		g.Expect(store.Add(task)).To(Succeed())
	}
	c := &storeCache{tasks: store,
		namespaced: []v1alpha1.TaskBackend{
			{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vendor"}, Spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeAPIGateway}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idle"}, Spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeHTTP}},
		},
		clustered: []v1alpha1.ClusterTaskBackend{
			{ObjectMeta: metav1.ObjectMeta{Name: "submit-gauges-shared"}, Spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps}},
		},
	}
	labels := func(kind v1alpha1.BackendKind, namespace, name string, typ v1alpha1.BackendType) map[string]string {
		return map[string]string{"backend_kind": string(kind), "backend_namespace": namespace, "backend_name": name, "type": string(typ)}
	}
	vendorLabels := labels(v1alpha1.BackendKindTaskBackend, ns, "vendor", v1alpha1.BackendTypeAPIGateway)
	idleLabels := labels(v1alpha1.BackendKindTaskBackend, ns, "idle", v1alpha1.BackendTypeHTTP)
	sharedLabels := labels(v1alpha1.BackendKindClusterTaskBackend, "", "submit-gauges-shared", v1alpha1.BackendTypeTrafficOps)
	goneLabels := labels(v1alpha1.BackendKindTaskBackend, ns, "", "unknown")

	families := gatherSubmitMetrics(g, c)
	value := func(name string, want map[string]string) float64 {
		v, ok := sample(g, families, name, want)
		g.Expect(ok).To(BeTrue(), "no series %s%v", name, want)
		return v
	}
	g.Expect(value("asynctask_submit_queue_length", vendorLabels)).To(BeEquivalentTo(2))
	g.Expect(value("asynctask_submit_outcome_unknown_tasks", vendorLabels)).To(BeEquivalentTo(1))
	g.Expect(value("asynctask_submit_queue_length", sharedLabels)).To(BeEquivalentTo(0))
	g.Expect(value("asynctask_submit_outcome_unknown_tasks", sharedLabels)).To(BeEquivalentTo(1))
	g.Expect(value("asynctask_submit_queue_length", idleLabels)).To(BeEquivalentTo(0), "every backend is reported, zeros included")
	g.Expect(value("asynctask_submit_outcome_unknown_tasks", idleLabels)).To(BeEquivalentTo(0))
	g.Expect(value("asynctask_submit_outcome_unknown_tasks", goneLabels)).To(BeEquivalentTo(1),
		"a task naming a backend that does not exist is counted under an empty backend_name")
	for _, name := range []string{"asynctask_submit_queue_length", "asynctask_submit_outcome_unknown_tasks"} {
		g.Expect(families[name].GetType()).To(Equal(dto.MetricType_GAUGE))
		g.Expect(labelNames(families[name])).To(ConsistOf("backend_kind,backend_name,backend_namespace,type"), name)
	}

	// Every outcome of every backend is reported, zeros included; a counted one once, with its count.
	recordSubmission(labelsFor(backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: ns, Name: "vendor"}, v1alpha1.BackendTypeAPIGateway), submissionAccepted)
	families = gatherSubmitMetrics(g, c)
	g.Expect(families["asynctask_submissions_total"].GetType()).To(Equal(dto.MetricType_COUNTER))
	g.Expect(labelNames(families["asynctask_submissions_total"])).To(ConsistOf("backend_kind,backend_name,backend_namespace,outcome,type"))
	for _, backend := range []map[string]string{vendorLabels, idleLabels, sharedLabels} {
		for _, outcome := range []string{"accepted", "rejected", "unknown", "resent"} {
			want := 0.0
			if backend["backend_name"] == "vendor" && outcome == "accepted" {
				want = 1
			}
			g.Expect(value("asynctask_submissions_total", with(backend, "outcome", outcome))).To(Equal(want), "%v %s", backend, outcome)
		}
	}
	_, ok := sample(g, families, "asynctask_submissions_total", goneLabels)
	g.Expect(ok).To(BeFalse(), "no zeros for a backend that does not exist")
}

func TestRecordSubmissionCountsOnlyTheFourOutcomes(t *testing.T) {
	g := NewWithT(t)
	key := backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: "submit-outcomes", Name: "vendor"}
	labels := labelsFor(key, v1alpha1.BackendTypeHTTP)
	for _, outcome := range []submissionOutcome{submissionAccepted, submissionRejected, submissionRejected,
		submissionUnknown, submissionResent, submissionAccepted, submissionAccepted} {
		recordSubmission(labels, outcome)
	}
	recordSubmission(labels, submissionOutcome("in progress"))
	recordSubmission(labels, submissionOutcome(""))
	recordSubmission(labels, submissionOutcome("Accepted"))

	counts := map[string]float64{}
	forBackend := map[string]string{"backend_namespace": key.Namespace, "backend_name": key.Name}
	for _, m := range gatherSubmissions(g) {
		values := map[string]string{}
		for _, l := range m.GetLabel() {
			values[l.GetName()] = l.GetValue()
		}
		if matches(values, forBackend) {
			counts[values["outcome"]] = m.GetCounter().GetValue()
		}
	}
	g.Expect(counts).To(Equal(map[string]float64{"accepted": 3, "rejected": 2, "unknown": 1, "resent": 1}))

	forgetBackendMetrics(key)
	for _, m := range gatherSubmissions(g) {
		values := map[string]string{}
		for _, l := range m.GetLabel() {
			values[l.GetName()] = l.GetValue()
		}
		g.Expect(matches(values, forBackend)).To(BeFalse(), "a deleted backend's submissions are forgotten")
	}
}

// gatherSubmissions returns every series of the counter, from a registry of its own (the manager's registers
// it only when the suite's manager starts).
func gatherSubmissions(g Gomega) []*dto.Metric {
	registry := prometheus.NewRegistry()
	g.Expect(registry.Register(submissionsTotal)).To(Succeed())
	families, err := registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var series []*dto.Metric
	for _, f := range families {
		series = append(series, f.GetMetric()...)
	}
	return series
}
