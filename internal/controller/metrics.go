package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// The labels that name a backend on every per-backend metric. Their values come from TaskBackends and
// ClusterTaskBackends, never from tasks, so the number of series is bounded by the number of backends; a
// task naming a backend that does not exist is counted with an empty backend_name (see labelsFor).
const (
	labelKind      = "backend_kind"
	labelNamespace = "backend_namespace"
	labelName      = "backend_name"
	labelType      = "type"
)

var backendLabelNames = []string{labelKind, labelNamespace, labelName, labelType}

func withBackendLabels(more ...string) []string {
	return append(append([]string{}, backendLabelNames...), more...)
}

// Metrics, served with controller-runtime's on the manager's metrics endpoint; docs/operations.md lists them.
var (
	pollsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_polls_total",
		Help: "Polls of vendor task-status APIs, by backend and outcome (success, or the kind of error).",
	}, withBackendLabels("outcome"))
	pollDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "asynctask_poll_duration_seconds",
		Help:    "Time one poll of a vendor took, a login included, by backend and outcome.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, withBackendLabels("outcome"))
	pollsDeferred = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_polls_deferred_total",
		Help: "Polls not sent when due, by backend and reason: the backend's rate limit, or its or its namespace's share of the workers was used up.",
	}, withBackendLabels("reason"))
	rateLimitWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_rate_limit_waits_total",
		Help: "Vendor requests that waited for the backend's rate limit while holding a worker (up to a second), by backend.",
	}, backendLabelNames)
	rateLimitWaitSeconds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_rate_limit_wait_seconds_total",
		Help: "Time vendor requests spent waiting for the backend's rate limit, by backend.",
	}, backendLabelNames)
	taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "asynctask_task_duration_seconds",
		Help:    "Time from an AsyncTask's creation until the operator saw it finished, by backend and final phase.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 20),
	}, withBackendLabels("phase"))
	detectionLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "asynctask_detection_latency_seconds",
		Help: "Time from the vendor's completion time of a task to the operator writing its final status, by backend; " +
			"tasks whose vendor gives no completion time are not observed.",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 14),
	}, backendLabelNames)
	vendorLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_vendor_logins_total",
		Help: "Logins to vendor APIs, by backend; one per backend unless sessions expire.",
	}, backendLabelNames)
	vendorLoginsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_vendor_logins_refused_total",
		Help: "Logins the vendor refused (wrong or revoked credentials), by backend.",
	}, backendLabelNames)
	backendReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "asynctask_backend_ready",
		Help: "1 when the backend's Ready condition is True, 0 when it is not, set by the backend's last check.",
	}, backendLabelNames)
	statusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_status_writes_total",
		Help: "Status patches the operator sent, by resource and outcome: written, conflict (the object changed since it was read; read again) or error.",
	}, []string{"resource", "outcome"})
)

// perBackend are the metrics whose series are removed when their backend is deleted.
var perBackend = []interface {
	DeletePartialMatch(prometheus.Labels) int
}{pollsTotal, pollDuration, pollsDeferred, rateLimitWaits, rateLimitWaitSeconds, taskDuration, detectionLatency,
	vendorLogins, vendorLoginsRefused, backendReady}

// registerMetrics adds the operator's metrics to controller-runtime's registry; a second manager in the same
// process (tests) shares them.
func registerMetrics(cache cache.Cache, ring ownership) {
	collectors := []prometheus.Collector{pollsTotal, pollDuration, pollsDeferred, rateLimitWaits, rateLimitWaitSeconds,
		taskDuration, detectionLatency, vendorLogins, vendorLoginsRefused, backendReady, statusWrites,
		&tasksByPhase{cache: cache}}
	if ring.enabled() {
		collectors = append(collectors, ringMembers, ringHandovers, &ringOwnedCollector{tasks: &tasksByPhase{cache: cache}, ring: ring})
	}
	for _, c := range collectors {
		if err := metrics.Registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				panic(err)
			}
		}
	}
	registerSubmitMetrics(cache)
}

// backendLabels are the label values naming one backend. A backend that could not be read (gone, or never
// there) has an empty name and type "unknown", so that a task cannot add series by naming backends.
type backendLabels [4]string

func labelsFor(key backendKey, backendType v1alpha1.BackendType) backendLabels {
	if backendType == "" {
		return backendLabels{string(key.Kind), key.Namespace, "", "unknown"}
	}
	return backendLabels{string(key.Kind), key.Namespace, key.Name, string(backendType)}
}

func (l backendLabels) with(more ...string) []string { return append(l[:], more...) }

// forgetBackendMetrics removes every series of a backend that is gone.
func forgetBackendMetrics(key backendKey) {
	match := prometheus.Labels{labelKind: string(key.Kind), labelNamespace: key.Namespace, labelName: key.Name}
	for _, m := range perBackend {
		m.DeletePartialMatch(match)
	}
}

// recordPoll counts one poll by its outcome (success, or the error's class) and observes its latency; a poll
// refused for its configuration sent nothing and is not timed.
func recordPoll(labels backendLabels, err error, took time.Duration) {
	outcome := "success"
	if err != nil {
		outcome = classify(err).outcome
	}
	pollsTotal.WithLabelValues(labels.with(outcome)...).Inc()
	if backend.KindOf(err) != backend.KindInvalidConfig || err == nil {
		pollDuration.WithLabelValues(labels.with(outcome)...).Observe(took.Seconds())
	}
}

// Reasons of asynctask_polls_deferred_total.
const (
	deferredRateLimit        = "RateLimit"
	deferredBackendWorkers   = "BackendWorkers"
	deferredNamespaceWorkers = "NamespaceWorkers"
)

func recordDeferred(labels backendLabels, reason string) {
	pollsDeferred.WithLabelValues(labels.with(reason)...).Inc()
}

// recordFinished observes, once, when a task is seen finished and its status written: how long it took, and
// how long after the vendor's completion time the operator wrote it.
func recordFinished(labels backendLabels, task *v1alpha1.AsyncTask, obs *backend.Observation, written time.Time) {
	taskDuration.WithLabelValues(labels.with(string(task.Status.Phase))...).Observe(written.Sub(task.CreationTimestamp.Time).Seconds())
	if obs != nil && obs.CompletionTime != nil {
		// A vendor clock ahead of ours is not a negative latency.
		detectionLatency.WithLabelValues(labels[:]...).Observe(max(written.Sub(*obs.CompletionTime), 0).Seconds())
	}
}

// recordBackendReady sets a backend's Ready gauge; a change of its type drops the series of the old one.
func recordBackendReady(key backendKey, backendType v1alpha1.BackendType, ready bool) {
	backendReady.DeletePartialMatch(prometheus.Labels{labelKind: string(key.Kind), labelNamespace: key.Namespace, labelName: key.Name})
	value := 0.0
	if ready {
		value = 1
	}
	backendReady.WithLabelValues(labelsFor(key, backendType).with()...).Set(value)
}

// recordStatusWrite counts one status patch of resource by its outcome.
func recordStatusWrite(resource string, err error) {
	outcome := "written"
	switch {
	case apierrors.IsConflict(err):
		outcome = "conflict"
	case err != nil:
		outcome = "error"
	}
	statusWrites.WithLabelValues(resource, outcome).Inc()
}

// tasksByPhase reports the number of AsyncTasks in each phase per backend, counted from the informer cache at
// scrape time. Tasks naming a backend that does not exist are counted under an empty backend_name.
type tasksByPhase struct {
	cache cache.Cache
}

// cachedTasks returns the tasks the cache holds, without copying them: a List copies every task into one
// slice, some 60 MB per scrape at 100,000 tasks. The objects are the cache's own, to be read only.
// controller-runtime's informers are client-go SharedIndexInformers, which have a store (tested).
func (c *tasksByPhase) cachedTasks(ctx context.Context) ([]*v1alpha1.AsyncTask, error) {
	informer, err := c.cache.GetInformer(ctx, &v1alpha1.AsyncTask{})
	if err != nil {
		return nil, err
	}
	withStore, ok := informer.(interface{ GetStore() toolscache.Store })
	if !ok {
		return nil, fmt.Errorf("the AsyncTask informer, a %T, has no store", informer)
	}
	objs := withStore.GetStore().List()
	tasks := make([]*v1alpha1.AsyncTask, 0, len(objs))
	for _, obj := range objs {
		if task, ok := obj.(*v1alpha1.AsyncTask); ok {
			tasks = append(tasks, task)
		}
	}
	return tasks, nil
}

var (
	tasksByPhaseDesc = prometheus.NewDesc("asynctask_tasks", "AsyncTasks by backend and phase.",
		withBackendLabels("phase"), nil)
	tasksStalledDesc = prometheus.NewDesc("asynctask_tasks_past_progress_deadline",
		"Unfinished AsyncTasks Stalled for their progressDeadlineSeconds (reason ProgressDeadlineExceeded), by backend.",
		backendLabelNames, nil)
)

func (c *tasksByPhase) Describe(ch chan<- *prometheus.Desc) {
	ch <- tasksByPhaseDesc
	ch <- tasksStalledDesc
}

func (c *tasksByPhase) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	namespaced := &v1alpha1.TaskBackendList{}
	clustered := &v1alpha1.ClusterTaskBackendList{}
	tasks, err := c.cachedTasks(ctx)
	if err != nil || c.cache.List(ctx, namespaced) != nil || c.cache.List(ctx, clustered) != nil {
		return
	}
	types := map[backendKey]v1alpha1.BackendType{}
	for _, b := range namespaced.Items {
		types[backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: b.Namespace, Name: b.Name}] = b.Spec.Type
	}
	for _, b := range clustered.Items {
		types[backendKey{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: b.Name}] = b.Spec.Type
	}
	phases := []v1alpha1.TaskPhase{v1alpha1.TaskPhasePending, v1alpha1.TaskPhaseRunning, v1alpha1.TaskPhaseSucceeded, v1alpha1.TaskPhaseFailed}
	counts := map[backendLabels]map[v1alpha1.TaskPhase]int{}
	stalled := map[backendLabels]int{}
	for key, t := range types {
		counts[labelsFor(key, t)] = map[v1alpha1.TaskPhase]int{}
	}
	for _, t := range tasks {
		key := backendKeyOf(t)
		labels := labelsFor(key, types[key])
		if counts[labels] == nil {
			counts[labels] = map[v1alpha1.TaskPhase]int{}
		}
		phase := t.Status.Phase
		if phase == "" {
			phase = v1alpha1.TaskPhasePending
		}
		counts[labels][phase]++
		if c := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionStalled); c != nil && !phase.Finished() &&
			c.Status == metav1.ConditionTrue && c.Reason == v1alpha1.ReasonProgressDeadlineExceeded {
			stalled[labels]++
		}
	}
	for labels, byPhase := range counts {
		for _, phase := range phases {
			ch <- prometheus.MustNewConstMetric(tasksByPhaseDesc, prometheus.GaugeValue, float64(byPhase[phase]), labels.with(string(phase))...)
		}
		ch <- prometheus.MustNewConstMetric(tasksStalledDesc, prometheus.GaugeValue, float64(stalled[labels]), labels.with()...)
	}
}
