package controller

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// Metrics of the jobs the operator starts itself (spec.submit): how each start request ended, and, counted from
// the informer cache at scrape time like asynctask_tasks, how many tasks wait for their operation's maxRunning
// and how many wait for a person. docs/operations.md lists them.

// submissionOutcome is the outcome label of asynctask_submissions_total: one of the constants below, never a
// value read from a task or a vendor.
type submissionOutcome string

// Outcomes of a start request.
const (
	// submissionAccepted: the vendor took the job (or, on ZStack, the job UUID of an unknown attempt exists).
	submissionAccepted submissionOutcome = "accepted"
	// submissionRejected: the vendor refused it (Submitted=False, SubmitRejected).
	submissionRejected submissionOutcome = "rejected"
	// submissionUnknown: the request may have reached the vendor and no answer says what it did.
	submissionUnknown submissionOutcome = "unknown"
	// submissionResent: a send repeating an attempt whose outcome was unknown, with the same key; that send is
	// counted under its own outcome as well.
	submissionResent submissionOutcome = "resent"
)

// submissionOutcomes are every outcome, in the order the zeros of a backend are reported.
var submissionOutcomes = []submissionOutcome{submissionAccepted, submissionRejected, submissionUnknown, submissionResent}

func (o submissionOutcome) valid() bool {
	switch o {
	case submissionAccepted, submissionRejected, submissionUnknown, submissionResent:
		return true
	}
	return false
}

const submissionsHelp = "Start requests of AsyncTasks with spec.submit, by backend and outcome: accepted, rejected, " +
	"unknown (it may have reached the vendor and no answer says what it did), or resent (an unknown one sent again " +
	"with its idempotency key, counted under its own outcome too)."

var submissionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "asynctask_submissions_total",
	Help: submissionsHelp,
}, withBackendLabels("outcome"))

// The counter's series go with their backend, like the other per-backend metrics (forgetBackendMetrics).
func init() { perBackend = append(perBackend, submissionsTotal) }

// recordSubmission counts one start request of a backend by its outcome. An outcome that is not one of the
// constants is not counted: the label's values stay the four documented ones whatever a caller passes.
func recordSubmission(labels backendLabels, outcome submissionOutcome) {
	if !outcome.valid() {
		return
	}
	submissionsTotal.WithLabelValues(labels.with(string(outcome))...).Inc()
}

var (
	// submissionsDesc is the counter's own description, for the zeros submitMetrics reports beside its series.
	submissionsDesc = prometheus.NewDesc("asynctask_submissions_total", submissionsHelp, withBackendLabels("outcome"), nil)
	submitQueueDesc = prometheus.NewDesc("asynctask_submit_queue_length",
		"Unfinished AsyncTasks waiting for a free place under their operation's maxRunning (Submitted=Unknown, reason Queued), by backend.",
		backendLabelNames, nil)
	submitOutcomeUnknownDesc = prometheus.NewDesc("asynctask_submit_outcome_unknown_tasks",
		"Unfinished AsyncTasks whose start request may have reached the vendor with no answer saying what it did, waiting for a "+
			"person's tasks.asynctask.dev/resolve annotation (Submitted=Unknown, reason SubmitOutcomeUnknown), by backend.",
		backendLabelNames, nil)
)

// registerSubmitMetrics adds the submission metrics to controller-runtime's registry (from registerMetrics); a
// second manager in the same process (tests) shares them.
func registerSubmitMetrics(cache cache.Cache) {
	if err := metrics.Registry.Register(&submitMetrics{cache: cache}); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			panic(err)
		}
	}
}

// submitMetrics serves asynctask_submissions_total, with a zero for every outcome of every backend that has
// not counted it yet (so that the series exist before the first start request, as asynctask_tasks reports
// every phase), and the two gauges, counted from the informer cache at scrape time. Tasks naming a backend
// that does not exist are counted under an empty backend_name, as in asynctask_tasks.
type submitMetrics struct {
	cache cache.Cache
}

func (c *submitMetrics) Describe(ch chan<- *prometheus.Desc) {
	submissionsTotal.Describe(ch)
	ch <- submitQueueDesc
	ch <- submitOutcomeUnknownDesc
}

func (c *submitMetrics) Collect(ch chan<- prometheus.Metric) {
	counted := c.collectSubmissions(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	namespaced := &v1alpha1.TaskBackendList{}
	clustered := &v1alpha1.ClusterTaskBackendList{}
	tasks, err := (&tasksByPhase{cache: c.cache}).cachedTasks(ctx)
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
	waiting := map[backendLabels]*waitingTasks{}
	for key, t := range types {
		labels := labelsFor(key, t)
		waiting[labels] = &waitingTasks{}
		for _, outcome := range submissionOutcomes {
			if !counted[labels.withOutcome(outcome)] {
				ch <- prometheus.MustNewConstMetric(submissionsDesc, prometheus.CounterValue, 0, labels.with(string(outcome))...)
			}
		}
	}
	for _, t := range tasks {
		// A finished task is trimmed of its conditions in the cache (trimTask), and none waits any more.
		if t.Status.Phase.Finished() {
			continue
		}
		queued, unknown := t.Queued(), t.SubmitOutcomeUnknown()
		if !queued && !unknown {
			continue
		}
		key := backendKeyOf(t)
		labels := labelsFor(key, types[key])
		w := waiting[labels]
		if w == nil {
			w = &waitingTasks{}
			waiting[labels] = w
		}
		if queued {
			w.queued++
		} else {
			w.unknown++
		}
	}
	for labels, w := range waiting {
		ch <- prometheus.MustNewConstMetric(submitQueueDesc, prometheus.GaugeValue, float64(w.queued), labels.with()...)
		ch <- prometheus.MustNewConstMetric(submitOutcomeUnknownDesc, prometheus.GaugeValue, float64(w.unknown), labels.with()...)
	}
}

// waitingTasks are the tasks of one backend that wait to be started: for maxRunning, or for a person.
type waitingTasks struct{ queued, unknown int }

// backendLabelsWithOutcome are the label values of one series of asynctask_submissions_total.
type backendLabelsWithOutcome [5]string

func (l backendLabels) withOutcome(o submissionOutcome) backendLabelsWithOutcome {
	return backendLabelsWithOutcome{l[0], l[1], l[2], l[3], string(o)}
}

// collectSubmissions passes on the counter's series and returns their label values, which the zeros skip.
func (c *submitMetrics) collectSubmissions(ch chan<- prometheus.Metric) map[backendLabelsWithOutcome]bool {
	series := make(chan prometheus.Metric)
	go func() {
		submissionsTotal.Collect(series)
		close(series)
	}()
	counted := map[backendLabelsWithOutcome]bool{}
	for m := range series {
		ch <- m
		var out dto.Metric
		if m.Write(&out) != nil {
			continue
		}
		values := map[string]string{}
		for _, l := range out.GetLabel() {
			values[l.GetName()] = l.GetValue()
		}
		var key backendLabelsWithOutcome
		for i, name := range withBackendLabels("outcome") {
			key[i] = values[name]
		}
		counted[key] = true
	}
	return counted
}
