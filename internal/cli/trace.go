package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// traceWidth is the width trace's output fits in: one screen of a terminal, a CI log, an issue.
const traceWidth = 80

func newTraceCommand(o *Options) *cobra.Command {
	events := 10
	cmd := &cobra.Command{
		Use:   "trace TASK",
		Short: "Show why a task is (not) moving: the task, its backend, credentials, conditions and events",
		Long: `trace answers "why is my task not moving?" on one screen. It shows the task; its backend and whether
the operator reached it (the backend's Ready condition); the backend's credentials Secret: present or missing
and its keys (never their values); for a ClusterTaskBackend, its allowedNamespaces and whether the task's
namespace matches; each of the task's conditions with its reason and message; the last events of the task
and of the backend; and, for a task the operator starts itself (spec.submit), the submission record, with
what to do when its outcome is unknown.

Everything is read as you: what you may not read is shown as "cannot read (forbidden)".

Exit codes: 0 when the task was shown, 3 when it does not exist or cannot be read.`,
		Example: `  kubectl asynctask trace import-orders -n shop
  kubectl asynctask trace import-orders --events 30`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTaskNames(o, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if events < 0 {
				return fmt.Errorf("--events %d: want 0 or more", events)
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ns, err := o.Namespace()
			if err != nil {
				return err
			}
			task, err := readTask(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]})
			if err != nil {
				return err
			}
			report := gatherTrace(cmd.Context(), c, task, events)
			report.write(o.Streams.Out, time.Now())
			return nil
		},
	}
	cmd.Flags().IntVar(&events, "events", events, "how many of the latest events to show, of the task and of the backend")
	return cmd
}

// traceReport is everything trace shows, read before anything is printed. A *Problem field says why the
// thing next to it could not be read ("not found", "cannot read (forbidden)", ...); "" when it was read.
type traceReport struct {
	task *v1alpha1.AsyncTask

	backendKind       v1alpha1.BackendKind
	backendKey        client.ObjectKey
	backendSpec       *v1alpha1.TaskBackendSpec
	backendStatus     *v1alpha1.TaskBackendStatus
	backendGeneration int64
	backendUID        types.UID
	backendProblem    string

	secretKey     client.ObjectKey
	secretKeys    []string
	secretProblem string

	// namespaceLabels are the task namespace's labels, read for a ClusterTaskBackend's allowedNamespaces.
	namespaceLabels  map[string]string
	namespaceProblem string

	taskEvents, backendEvents               []eventsv1.Event
	taskEventsProblem, backendEventsProblem string
	// maxEvents is how many of the latest events of each are shown.
	maxEvents int
}

// gatherTrace reads what trace shows about the task: its backend, the backend's Secret, the namespace (for
// allowedNamespaces) and the events. Nothing here fails the command.
func gatherTrace(ctx context.Context, c client.Client, task *v1alpha1.AsyncTask, maxEvents int) *traceReport {
	r := &traceReport{task: task, maxEvents: maxEvents, backendKind: task.Spec.BackendRef.Kind}
	if r.backendKind == "" {
		r.backendKind = v1alpha1.BackendKindTaskBackend
	}
	r.backendKey = client.ObjectKey{Name: task.Spec.BackendRef.Name}
	eventsNamespace := metav1.NamespaceDefault // where events of a cluster-scoped object are recorded
	var backend client.Object
	if r.backendKind == v1alpha1.BackendKindClusterTaskBackend {
		b := &v1alpha1.ClusterTaskBackend{}
		backend = b
		if err := c.Get(ctx, r.backendKey, b); err == nil {
			r.backendSpec, r.backendStatus = &b.Spec, &b.Status
		} else {
			r.backendProblem = readProblem(err)
		}
	} else {
		r.backendKey.Namespace = task.Namespace
		eventsNamespace = task.Namespace
		b := &v1alpha1.TaskBackend{}
		backend = b
		if err := c.Get(ctx, r.backendKey, b); err == nil {
			r.backendSpec, r.backendStatus = &b.Spec, &b.Status
		} else {
			r.backendProblem = readProblem(err)
		}
	}
	r.backendGeneration, r.backendUID = backend.GetGeneration(), backend.GetUID()

	if r.backendSpec != nil && r.backendSpec.CredentialsSecretRef != nil {
		ref := r.backendSpec.CredentialsSecretRef
		r.secretKey = client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}
		if r.backendKind == v1alpha1.BackendKindTaskBackend {
			r.secretKey.Namespace = task.Namespace
		}
		// The Secret is read whole (there is no way to read only its keys); its values go no further.
		secret := &corev1.Secret{}
		if err := c.Get(ctx, r.secretKey, secret); err == nil {
			for k := range secret.Data {
				r.secretKeys = append(r.secretKeys, k)
			}
			slices.Sort(r.secretKeys)
		} else {
			r.secretProblem = readProblem(err)
		}
	}

	if r.backendKind == v1alpha1.BackendKindClusterTaskBackend && r.backendSpec != nil && r.backendSpec.AllowedNamespaces != nil {
		ns := &corev1.Namespace{}
		if err := c.Get(ctx, client.ObjectKey{Name: task.Namespace}, ns); err == nil {
			r.namespaceLabels = ns.Labels
		} else {
			r.namespaceProblem = readProblem(err)
		}
	}

	r.taskEvents, r.taskEventsProblem = eventsAbout(ctx, c, task.Namespace, "AsyncTask", task.Name, task.UID)
	if r.backendProblem == "" {
		r.backendEvents, r.backendEventsProblem = eventsAbout(ctx, c, eventsNamespace, string(r.backendKind), r.backendKey.Name, r.backendUID)
	}
	return r
}

// eventsAbout lists the events (events.k8s.io/v1) about one object, oldest first. It asks the server to
// select them by regarding.kind and regarding.name, and filters again here (by UID too, so that events of
// an earlier object of the same name are left out) in case the server selects on fewer fields.
func eventsAbout(ctx context.Context, c client.Client, ns, kind, name string, uid types.UID) ([]eventsv1.Event, string) {
	list := &eventsv1.EventList{}
	err := c.List(ctx, list, client.InNamespace(ns), client.MatchingFields{"regarding.kind": kind, "regarding.name": name})
	if apierrors.IsBadRequest(err) { // a server that cannot select events by these fields
		err = c.List(ctx, list, client.InNamespace(ns))
	}
	if err != nil {
		return nil, readProblem(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name && (e.Regarding.UID == "" || uid == "" || e.Regarding.UID == uid) {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b eventsv1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	return out, ""
}

// eventTime is when an event (or the latest of its series) was last seen.
func eventTime(e eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// eventCount is how many times an event happened.
func eventCount(e eventsv1.Event) int32 {
	if e.Series != nil {
		return e.Series.Count
	}
	return max(e.DeprecatedCount, 1)
}

// write prints the report, sectioned, in traceWidth columns; ages are counted to now.
func (r *traceReport) write(w io.Writer, now time.Time) {
	p := &tracePrinter{w: w, now: now}
	r.writeTask(p)
	r.writeBackend(p)
	r.writeCredentials(p)
	r.writeAllowedNamespaces(p)
	r.writeConditions(p)
	p.events("Events of the task", r.taskEvents, r.taskEventsProblem, r.maxEvents)
	if r.backendProblem == "" {
		p.events("Events of the backend", r.backendEvents, r.backendEventsProblem, r.maxEvents)
	}
	r.writeSubmission(p)
}

func (r *traceReport) writeTask(p *tracePrinter) {
	t := r.task
	p.heading("Task %s/%s", t.Namespace, t.Name)
	phase := string(t.Status.Phase)
	if phase == "" {
		phase = "(not polled yet)"
	}
	if t.Status.Progress != nil {
		phase += fmt.Sprintf(", %d%%", *t.Status.Progress)
	}
	p.field("Phase", phase)
	p.field("Message", orNone(t.Status.Message))
	p.field("Task ID", orNone(t.EffectiveTaskID()))
	if t.Status.VendorStatus != "" {
		p.field("Vendor status", t.Status.VendorStatus)
	}
	p.field("Created", p.ago(t.CreationTimestamp.Time))
	if t.Status.LastProgressTime != nil {
		p.field("Last moved", p.ago(t.Status.LastProgressTime.Time))
	}
	if t.Status.CompletionTime != nil {
		p.field("Completed", p.ago(t.Status.CompletionTime.Time))
	}
	p.field("Backend", fmt.Sprintf("%s %s", r.backendKind, t.Spec.BackendRef.Name))
	if t.Status.ConsecutiveErrors > 0 {
		p.field("Poll errors", fmt.Sprintf("%d in a row", t.Status.ConsecutiveErrors))
	}
	if t.Status.ObservedGeneration != t.Generation {
		p.field("Status", fmt.Sprintf("for generation %d; the spec is at %d (the operator has not caught up)",
			t.Status.ObservedGeneration, t.Generation))
	}
}

func (r *traceReport) writeBackend(p *tracePrinter) {
	p.heading("Backend %s %s", r.backendKind, keyString(r.backendKey))
	if r.backendProblem != "" {
		p.line(r.backendProblem)
		return
	}
	s := r.backendSpec
	p.field("Type", string(s.Type))
	p.field("URL", s.URL)
	if s.PollInterval != nil {
		p.field("Poll interval", s.PollInterval.Duration.String())
	}
	if len(s.Operations) > 0 {
		var names []string
		for _, op := range s.Operations {
			names = append(names, op.Name)
		}
		p.field("Operations", strings.Join(names, ", "))
	}
	ready := meta.FindStatusCondition(r.backendStatus.Conditions, v1alpha1.ConditionReady)
	if ready == nil {
		p.field("Ready", "(no condition yet: the operator has not looked at it)")
	} else {
		p.field("Ready", fmt.Sprintf("%s, %s, %s", ready.Status, ready.Reason, p.ago(ready.LastTransitionTime.Time)))
		if ready.Message != "" {
			p.continued(ready.Message)
		}
	}
	if g := r.backendStatus.ObservedGeneration; g != 0 && g != r.backendGeneration {
		p.field("Status", fmt.Sprintf("for generation %d; the spec is at %d", g, r.backendGeneration))
	}
}

func (r *traceReport) writeCredentials(p *tracePrinter) {
	if r.backendSpec == nil {
		return
	}
	if r.backendSpec.CredentialsSecretRef == nil {
		p.heading("Credentials")
		p.line("none: the backend names no credentialsSecretRef")
		return
	}
	p.heading("Credentials Secret %s", keyString(r.secretKey))
	if r.secretProblem != "" {
		p.field("Secret", r.secretProblem)
		return
	}
	p.field("Secret", "present; values are never shown")
	p.field("Keys", orNone(strings.Join(r.secretKeys, ", ")))
	if sets := credentialSets(r.backendSpec); len(sets) > 0 {
		if set := completeSet(sets, r.secretKeys); set != nil {
			p.field("Usable set", strings.Join(set, " + "))
		} else {
			var want []string
			for _, s := range sets {
				want = append(want, strings.Join(s, " + "))
			}
			p.field("Usable set", "none; "+string(r.backendSpec.Type)+" takes "+strings.Join(want, ", or "))
		}
	}
}

// credentialSets are the complete sets of Secret keys a backend accepts (docs: the contract's credential
// table); nil where the backend decides otherwise (an HTTP backend that logs in with its own expression).
func credentialSets(s *v1alpha1.TaskBackendSpec) [][]string {
	switch s.Type {
	case v1alpha1.BackendTypeNetworkInsight, v1alpha1.BackendTypeTrafficOps:
		return [][]string{{"username", "password"}, {"token"}}
	case v1alpha1.BackendTypeZStack:
		return [][]string{{"accountName", "password"}, {"sessionID"}}
	case v1alpha1.BackendTypeAPIGateway:
		return [][]string{{"token"}, {"username", "password"}, {"accessKey", "secretKey"}}
	case v1alpha1.BackendTypeHTTP:
		if s.HTTP == nil || s.HTTP.Auth == nil || s.HTTP.Auth.Method == "" {
			return [][]string{{"token"}, {"username", "password"}, {"headerName", "headerValue"}}
		}
		switch s.HTTP.Auth.Method {
		case v1alpha1.HTTPAuthBearer:
			return [][]string{{"token"}}
		case v1alpha1.HTTPAuthBasic:
			return [][]string{{"username", "password"}}
		case v1alpha1.HTTPAuthHeader:
			return [][]string{{"headerName", "headerValue"}}
		}
	}
	return nil
}

// completeSet returns the first set whose keys are all present.
func completeSet(sets [][]string, keys []string) []string {
	for _, set := range sets {
		if !slices.ContainsFunc(set, func(k string) bool { return !slices.Contains(keys, k) }) {
			return set
		}
	}
	return nil
}

func (r *traceReport) writeAllowedNamespaces(p *tracePrinter) {
	if r.backendKind != v1alpha1.BackendKindClusterTaskBackend || r.backendSpec == nil {
		return
	}
	p.heading("Allowed namespaces")
	selector := r.backendSpec.AllowedNamespaces
	if selector == nil {
		p.field("Selector", "(none): every namespace")
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		p.field("Selector", "invalid: "+err.Error())
		return
	}
	p.field("Selector", orNone(sel.String()))
	if r.namespaceProblem != "" {
		p.field("Namespace", fmt.Sprintf("%s: %s", r.task.Namespace, r.namespaceProblem))
		return
	}
	var nsLabels []string
	for k, v := range r.namespaceLabels {
		nsLabels = append(nsLabels, k+"="+v)
	}
	slices.Sort(nsLabels)
	p.field("Namespace", fmt.Sprintf("%s, labels %s", r.task.Namespace, orNone(strings.Join(nsLabels, ", "))))
	if sel.Matches(labels.Set(r.namespaceLabels)) {
		p.field("Matches", "yes")
	} else {
		p.field("Matches", "no: the operator does not poll this task (BackendNotAllowed) until the selector "+
			"or the namespace's labels change")
	}
}

func (r *traceReport) writeConditions(p *tracePrinter) {
	p.heading("Conditions")
	conditions := r.task.Status.Conditions
	if len(conditions) == 0 {
		p.line("none yet: the operator has not written the task's status")
		return
	}
	for i, c := range conditions {
		p.line(fmt.Sprintf("%-12s %-8s %-25s %s", c.Type, c.Status, c.Reason, p.ago(c.LastTransitionTime.Time)))
		// Conditions often share their message: it is shown once, under the last of them.
		if c.Message != "" && (i == len(conditions)-1 || conditions[i+1].Message != c.Message) {
			p.wrapped(4, c.Message)
		}
	}
}

func (r *traceReport) writeSubmission(p *tracePrinter) {
	t := r.task
	if t.Spec.Submit == nil {
		return
	}
	p.heading("Submission")
	op := t.Spec.Submit.Operation
	if r.backendSpec != nil && !slices.ContainsFunc(r.backendSpec.Operations, func(o v1alpha1.Operation) bool { return o.Name == op }) {
		op += " (the backend has no such operation)"
	}
	p.field("Operation", op)
	var key string
	if sub := t.Status.Submission; sub != nil {
		line := fmt.Sprintf("attempt %d", sub.Attempt)
		if sub.SentTime != nil {
			line += ", sent " + p.ago(sub.SentTime.Time)
		}
		if sub.ResponseStatus != 0 {
			line += fmt.Sprintf(", answered HTTP %d", sub.ResponseStatus)
		}
		if sub.AcceptedTime != nil {
			line += ", accepted " + p.ago(sub.AcceptedTime.Time)
		}
		p.field("In status", line)
		key = sub.IdempotencyKey
		p.field("Key", orNone(key))
	} else {
		p.field("In status", "(no attempt recorded)")
	}
	p.field("In metadata", "submit-attempt: "+submitAttemptText(t.Annotations[v1alpha1.AnnotationSubmitAttempt], key, p))
	p.continued("task-id: " + orNone(t.Annotations[v1alpha1.AnnotationTaskID]))
	p.continued("resolve: " + orNone(t.Annotations[v1alpha1.AnnotationResolve]))
	c := t.SubmittedCondition()
	if c == nil {
		p.field("Submitted", "(no condition yet)")
		return
	}
	p.field("Submitted", fmt.Sprintf("%s, %s, %s", c.Status, c.Reason, p.ago(c.LastTransitionTime.Time)))
	if t.SubmitOutcomeUnknown() {
		p.blank()
		p.wrapped(0, "The start request may have reached the vendor, and no answer says what it did. Look "+
			"for the job in the vendor system (the Warning event above says where), then answer with one of:")
		cmd := fmt.Sprintf("kubectl asynctask resolve %s -n %s", t.Name, t.Namespace)
		p.line(cmd + " --adopt <JOB ID>")
		p.line(cmd + " --resubmit")
		p.line(cmd + " --abandon")
	}
}

// submitAttemptText shows the submit-attempt annotation, {"attempt", "key", "time"}, in words; a key the same
// as status's (statusKey) is not repeated.
func submitAttemptText(v, statusKey string, p *tracePrinter) string {
	if v == "" {
		return "(none)"
	}
	var rec struct {
		Attempt int32     `json:"attempt"`
		Key     string    `json:"key"`
		Time    time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return v
	}
	key := "key " + rec.Key
	if rec.Key == statusKey {
		key = "the same key"
	}
	return fmt.Sprintf("attempt %d, %s, %s", rec.Attempt, key, p.ago(rec.Time))
}

// tracePrinter writes trace's sections in traceWidth columns.
type tracePrinter struct {
	w       io.Writer
	now     time.Time
	started bool
}

// fieldIndent is where a field's value starts: after "  " and the longest label ("Vendor status:  ").
const fieldIndent = 18

func (p *tracePrinter) heading(format string, args ...any) {
	if p.started {
		p.blank()
	}
	p.started = true
	fmt.Fprintln(p.w, oneLine(fmt.Sprintf(format, args...)))
}

func (p *tracePrinter) blank() { fmt.Fprintln(p.w) }

// field prints "  Label:  value", the value wrapped at fieldIndent.
func (p *tracePrinter) field(label, value string) {
	lines := wrap(value, traceWidth-fieldIndent)
	fmt.Fprintf(p.w, "  %-*s%s\n", fieldIndent-2, label+":", lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(p.w, "%*s%s\n", fieldIndent, "", l)
	}
}

// continued prints more of the last field's value, on lines of its own.
func (p *tracePrinter) continued(value string) {
	for _, l := range wrap(value, traceWidth-fieldIndent) {
		fmt.Fprintf(p.w, "%*s%s\n", fieldIndent, "", l)
	}
}

// line prints one line of a section as it is (it is short), indented.
func (p *tracePrinter) line(s string) {
	fmt.Fprintf(p.w, "  %s\n", oneLine(s))
}

// wrapped prints text wrapped at traceWidth, indented.
func (p *tracePrinter) wrapped(indent int, text string) {
	for _, l := range wrap(text, traceWidth-indent) {
		fmt.Fprintf(p.w, "%*s%s\n", indent, "", l)
	}
}

func (p *tracePrinter) events(title string, events []eventsv1.Event, problem string, limit int) {
	if problem != "" {
		p.heading("%s", title)
		p.line(problem)
		return
	}
	if len(events) > limit {
		p.heading("%s (the last %d of %d, oldest first)", title, limit, len(events))
		events = events[len(events)-limit:]
	} else {
		p.heading("%s", title)
	}
	if len(events) == 0 {
		p.line("none")
		return
	}
	for _, e := range events {
		count := ""
		if n := eventCount(e); n > 1 {
			count = fmt.Sprintf("x%d", n)
		}
		p.line(fmt.Sprintf("%-8s %-25s %-8s %-5s %s", e.Type, e.Reason, e.Action, count, p.ago(eventTime(e))))
		if e.Note != "" {
			p.wrapped(4, e.Note)
		}
	}
}

// ago is how long before now t was, as kubectl shows ages.
func (p *tracePrinter) ago(t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return duration.HumanDuration(p.now.Sub(t)) + " ago"
}

// wrap breaks text into lines of at most width runes, at spaces where it can; a word longer than a line is
// cut. Control characters (a vendor's message may hold any) become spaces.
func wrap(text string, width int) []string {
	var lines []string
	var line []rune
	for _, word := range strings.Fields(oneLine(text)) {
		w := []rune(word)
		for len(w) > width {
			if len(line) > 0 {
				lines = append(lines, string(line))
				line = nil
			}
			lines = append(lines, string(w[:width]))
			w = w[width:]
		}
		switch {
		case len(w) == 0:
		case len(line) == 0:
			line = w
		case len(line)+1+len(w) <= width:
			line = append(append(line, ' '), w...)
		default:
			lines = append(lines, string(line))
			line = w
		}
	}
	if len(line) > 0 || len(lines) == 0 {
		lines = append(lines, string(line))
	}
	return lines
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// keyString is namespace/name, or name for a cluster-scoped object.
func keyString(k client.ObjectKey) string {
	if k.Namespace == "" {
		return k.Name
	}
	return k.Namespace + "/" + k.Name
}
