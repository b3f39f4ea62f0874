package controller

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// scrape gathers what the manager's metrics endpoint serves: controller-runtime's registry.
func scrape(g Gomega) map[string]*dto.MetricFamily {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	return byName
}

// sample returns the value of the series of name whose labels include want (a histogram's sample count), and
// whether there is one; it fails when more than one series matches.
func sample(g Gomega, families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	var found []*dto.Metric
	for _, m := range families[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if matches(labels, want) {
			found = append(found, m)
		}
	}
	g.Expect(len(found)).To(BeNumerically("<=", 1), "%s%v matches more than one series", name, want)
	if len(found) == 0 {
		return 0, false
	}
	m := found[0]
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount()), true
	}
	return m.GetUntyped().GetValue(), true
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// labelNames returns the label names of every series of a family, each set sorted and joined by commas.
func labelNames(f *dto.MetricFamily) []string {
	var sets []string
	for _, m := range f.GetMetric() {
		var names []string
		for _, l := range m.GetLabel() {
			names = append(names, l.GetName())
		}
		slices.Sort(names)
		sets = append(sets, strings.Join(names, ","))
	}
	return slices.Compact(slices.Sorted(slices.Values(sets)))
}

// runMeasuredTasks runs a Traffic Ops task to success through a backend that logs in with a password, and
// keeps a backend whose password the vendor refuses; it returns their keys.
func runMeasuredTasks(t *testing.T) (good, refused backendKey) {
	t.Helper()
	ns := newNamespace(t)
	b := createBackend(t, ns, "to", trafficOpsSpec(), trafficOpsPasswordSecret)
	waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
	id := trafficOpsTaskID(9001 + len(ns)%900)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Succeeded})
	createTask(t, ns, "measured", "to", id)
	waitForPhase(t, ns, "measured", v1alpha1.TaskPhaseSucceeded)

	bad := createBackend(t, ns, "to-wrong-password", trafficOpsSpec(), map[string]string{"username": "sim-user", "password": "wrong"})
	waitForBackendReady(t, bad, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	return backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: ns, Name: "to"},
		backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: ns, Name: "to-wrong-password"}
}

func backendLabelsOf(key backendKey) map[string]string {
	return map[string]string{"backend_kind": string(key.Kind), "backend_namespace": key.Namespace, "backend_name": key.Name,
		"type": string(v1alpha1.BackendTypeTrafficOps)}
}

func with(labels map[string]string, kv ...string) map[string]string {
	out := maps.Clone(labels)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestMetricsNameEachBackendAndGoWithIt runs real tasks on the control plane, scrapes the registry, and checks
// every operator metric's series and label names; then deletes a backend and checks its series are gone.
func TestMetricsNameEachBackendAndGoWithIt(t *testing.T) {
	g := NewWithT(t)
	good, refused := runMeasuredTasks(t)
	goodLabels, refusedLabels := backendLabelsOf(good), backendLabelsOf(refused)

	perBackend := strings.Join([]string{"backend_kind", "backend_name", "backend_namespace", "type"}, ",")
	wantLabels := map[string]string{
		"asynctask_polls_total":                   "backend_kind,backend_name,backend_namespace,outcome,type",
		"asynctask_poll_duration_seconds":         "backend_kind,backend_name,backend_namespace,outcome,type",
		"asynctask_tasks":                         "backend_kind,backend_name,backend_namespace,phase,type",
		"asynctask_tasks_past_progress_deadline":  perBackend,
		"asynctask_task_duration_seconds":         "backend_kind,backend_name,backend_namespace,phase,type",
		"asynctask_detection_latency_seconds":     perBackend,
		"asynctask_vendor_logins_total":           perBackend,
		"asynctask_vendor_logins_refused_total":   perBackend,
		"asynctask_backend_ready":                 perBackend,
		"asynctask_status_writes_total":           "outcome,resource",
		"asynctask_polls_deferred_total":          "backend_kind,backend_name,backend_namespace,reason,type",
		"asynctask_rate_limit_waits_total":        perBackend,
		"asynctask_rate_limit_wait_seconds_total": perBackend,
	}
	g.Eventually(func(g Gomega) {
		families := scrape(g)
		positive := func(name string, labels map[string]string) {
			v, ok := sample(g, families, name, labels)
			g.Expect(ok).To(BeTrue(), "no series %s%v", name, labels)
			g.Expect(v).To(BeNumerically(">", 0), "%s%v", name, labels)
		}
		positive("asynctask_polls_total", with(goodLabels, "outcome", "success"))
		positive("asynctask_poll_duration_seconds", with(goodLabels, "outcome", "success"))
		positive("asynctask_task_duration_seconds", with(goodLabels, "phase", "Succeeded"))
		positive("asynctask_detection_latency_seconds", goodLabels)
		positive("asynctask_vendor_logins_total", goodLabels)
		positive("asynctask_vendor_logins_refused_total", refusedLabels)
		positive("asynctask_backend_ready", goodLabels)
		positive("asynctask_tasks", with(goodLabels, "phase", "Succeeded"))
		positive("asynctask_status_writes_total", map[string]string{"resource": "AsyncTask", "outcome": "written"})
		positive("asynctask_status_writes_total", map[string]string{"resource": "TaskBackend", "outcome": "written"})

		ready, ok := sample(g, families, "asynctask_backend_ready", refusedLabels)
		g.Expect(ok).To(BeTrue())
		g.Expect(ready).To(BeZero(), "a backend whose login is refused is not ready")
		running, ok := sample(g, families, "asynctask_tasks", with(goodLabels, "phase", "Running"))
		g.Expect(ok).To(BeTrue(), "every phase is reported, zeros included")
		g.Expect(running).To(BeZero())
		logins, _ := sample(g, families, "asynctask_vendor_logins_total", refusedLabels)
		g.Expect(logins).To(BeZero(), "a refused login is not a login")
	}, eventually, tick).Should(Succeed())

	var text strings.Builder
	for _, f := range scrape(g) {
		text.WriteString(f.String())
	}
	g.Expect(text.String()).NotTo(ContainSubstring("sim-password"), "no credential reaches a metric")

	// The deferred and rate-limit series appear with the first of them (TestRateLimitedPollsAreCounted); here
	// only the label names of every family present.
	families := scrape(g)
	for name, want := range wantLabels {
		if f, ok := families[name]; ok {
			g.Expect(labelNames(f)).To(ConsistOf(want), name)
		}
	}

	g.Expect(k8sClient.Delete(context.Background(), &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{
		Namespace: refused.Namespace, Name: refused.Name}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		families := scrape(g)
		for name := range families {
			for _, m := range families[name].GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				g.Expect(matches(labels, map[string]string{"backend_namespace": refused.Namespace, "backend_name": refused.Name})).
					To(BeFalse(), "series %s%v of a deleted backend", name, labels)
			}
		}
	}, eventually, tick).Should(Succeed())
	_, ok := sample(g, scrape(g), "asynctask_backend_ready", goodLabels)
	g.Expect(ok).To(BeTrue(), "the other backend keeps its series")
}

// TestRateLimitedPollsAreCounted runs tasks through a backend allowing one request a second: requests wait for
// the rate limit, and polls that would wait longer are deferred; both are counted for that backend.
func TestRateLimitedPollsAreCounted(t *testing.T) {
	g := NewWithT(t)
	labels := runRateLimitedTasks(t)
	g.Eventually(func(g Gomega) {
		families := scrape(g)
		waits, _ := sample(g, families, "asynctask_rate_limit_waits_total", labels)
		waited, _ := sample(g, families, "asynctask_rate_limit_wait_seconds_total", labels)
		deferred, _ := sample(g, families, "asynctask_polls_deferred_total", with(labels, "reason", "RateLimit"))
		g.Expect(waits).To(BeNumerically(">", 0))
		g.Expect(waited).To(BeNumerically(">", 0))
		g.Expect(deferred).To(BeNumerically(">", 0))
	}, eventually, tick).Should(Succeed())
}

// runRateLimitedTasks starts tasks on a backend allowing one request a second and returns its labels.
func runRateLimitedTasks(t *testing.T) map[string]string {
	t.Helper()
	ns := newNamespace(t)
	spec := trafficOpsSpec()
	spec.RateLimit = &v1alpha1.RateLimit{QPS: 1, Burst: 1}
	createBackend(t, ns, "slow", spec, trafficOpsTokenSecret)
	for i := range 4 {
		id := trafficOpsTaskID(9501 + i + 4*(len(ns)%100))
		sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Succeeded})
		createTask(t, ns, "limited-"+string(rune('a'+i)), "slow", id)
	}
	return backendLabelsOf(backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: ns, Name: "slow"})
}

// TestTasksPastTheirProgressDeadlineAreCounted: a running task whose vendor reports no change for its
// progressDeadlineSeconds is counted for its backend while it is Stalled.
func TestTasksPastTheirProgressDeadlineAreCounted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "to", trafficOpsSpec(), trafficOpsTokenSecret)
	id := trafficOpsTaskID(9801 + len(ns)%100)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running})
	createTask(t, ns, "stuck", "to", id, func(task *v1alpha1.AsyncTask) { task.Spec.ProgressDeadlineSeconds = ptr.To[int32](1) })
	labels := backendLabelsOf(backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: ns, Name: "to"})
	waitForTask(t, ns, "stuck", func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonProgressDeadlineExceeded)
	})
	g.Eventually(func(g Gomega) {
		n, ok := sample(g, scrape(g), "asynctask_tasks_past_progress_deadline", labels)
		g.Expect(ok).To(BeTrue())
		g.Expect(n).To(BeEquivalentTo(1))
	}, eventually, tick).Should(Succeed())
}

// suiteCache is the cache of the suite's manager.
var suiteCache cache.Cache

// TestTaskCountsReadTheInformerStoreWithoutCopies: the manager's informer for AsyncTasks exposes its store,
// so that a scrape counts the cached tasks without copying each into a list.
func TestTaskCountsReadTheInformerStoreWithoutCopies(t *testing.T) {
	g := NewWithT(t)
	informer, err := suiteCache.GetInformer(context.Background(), &v1alpha1.AsyncTask{})
	g.Expect(err).NotTo(HaveOccurred())
	_, ok := informer.(interface{ GetStore() toolscache.Store })
	g.Expect(ok).To(BeTrue(), "a %T has no GetStore: tasksByPhase falls back to a List", informer)
}
