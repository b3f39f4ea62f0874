package controller

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Metrics, served with controller-runtime's on the manager's metrics endpoint.
var (
	pollsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_polls_total",
		Help: "Polls of vendor task-status APIs, by backend type and outcome (success, or the kind of error).",
	}, []string{"backend_type", "outcome"})
	pollDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "asynctask_poll_duration_seconds",
		Help:    "Time one poll of a vendor took, a login included, by backend type.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"backend_type"})
	taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "asynctask_task_duration_seconds",
		Help:    "Time from an AsyncTask's creation until the operator saw it finished, by backend type and final phase.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 20),
	}, []string{"backend_type", "phase"})
	vendorLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_vendor_logins_total",
		Help: "Logins to vendor APIs, by backend type; one per backend unless sessions expire.",
	}, []string{"backend_type"})
)

// registerMetrics adds the operator's metrics to controller-runtime's registry; a second manager in the same
// process (tests) shares them.
func registerMetrics(cache client.Reader) {
	for _, c := range []prometheus.Collector{pollsTotal, pollDuration, taskDuration, vendorLogins, &tasksByPhase{reader: cache}} {
		if err := metrics.Registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				panic(err)
			}
		}
	}
}

// recordPoll counts one poll by its outcome (success, or the error's class) and observes its latency; a poll
// refused for its configuration sent nothing and is not timed.
func recordPoll(backendType v1alpha1.BackendType, err error, took time.Duration) {
	outcome := "success"
	if err != nil {
		outcome = classify(err).outcome
	}
	pollsTotal.WithLabelValues(typeLabel(backendType), outcome).Inc()
	if backend.KindOf(err) != backend.KindInvalidConfig || err == nil {
		pollDuration.WithLabelValues(typeLabel(backendType)).Observe(took.Seconds())
	}
}

// recordFinished observes how long a task took, once, when it is seen finished.
func recordFinished(backendType v1alpha1.BackendType, task *v1alpha1.AsyncTask, now time.Time) {
	taskDuration.WithLabelValues(typeLabel(backendType), string(task.Status.Phase)).Observe(now.Sub(task.CreationTimestamp.Time).Seconds())
}

func typeLabel(t v1alpha1.BackendType) string {
	if t == "" {
		return "unknown"
	}
	return string(t)
}

// tasksByPhase reports the number of AsyncTasks in each phase, counted from the informer cache at scrape time.
type tasksByPhase struct {
	reader client.Reader
}

var tasksByPhaseDesc = prometheus.NewDesc("asynctask_tasks", "AsyncTasks by phase.", []string{"phase"}, nil)

func (c *tasksByPhase) Describe(ch chan<- *prometheus.Desc) { ch <- tasksByPhaseDesc }

func (c *tasksByPhase) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tasks := &v1alpha1.AsyncTaskList{}
	if err := c.reader.List(ctx, tasks); err != nil {
		return
	}
	counts := map[v1alpha1.TaskPhase]int{
		v1alpha1.TaskPhasePending: 0, v1alpha1.TaskPhaseRunning: 0, v1alpha1.TaskPhaseSucceeded: 0, v1alpha1.TaskPhaseFailed: 0,
	}
	for _, t := range tasks.Items {
		phase := t.Status.Phase
		if phase == "" {
			phase = v1alpha1.TaskPhasePending
		}
		counts[phase]++
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(tasksByPhaseDesc, prometheus.GaugeValue, float64(n), string(phase))
	}
}
