package controller

import (
	"slices"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// lazyValues is a logr.LogSink that keeps the key/value pairs given to WithValues and hands them to the sink
// under it only when a line is written. controller-runtime gives every reconcile a logger with the object's
// name and a reconcile ID; zap encodes such values at once, which took 8% of the manager's CPU at 10,000
// running tasks (docs/performance.md), while almost no reconcile logs anything.
type lazyValues struct {
	sink   logr.LogSink
	values []any
}

var _ logr.CallDepthLogSink = (*lazyValues)(nil)

// withLazyValues returns log whose WithValues costs an append until a line is written.
func withLazyValues(log logr.Logger) logr.Logger {
	sink := log.GetSink()
	if sink == nil {
		return log
	}
	if _, ok := sink.(*lazyValues); ok {
		return log
	}
	// logr.New calls Init with one more frame of call depth, which Init passes on: the frame of lazyValues.Info
	// or Error, so that the line logged names its caller (tested).
	return logr.New(&lazyValues{sink: sink})
}

func (l *lazyValues) Init(info logr.RuntimeInfo) { l.sink.Init(info) }

func (l *lazyValues) Enabled(level int) bool { return l.sink.Enabled(level) }

func (l *lazyValues) Info(level int, msg string, keysAndValues ...any) {
	l.materialized().Info(level, msg, keysAndValues...)
}

func (l *lazyValues) Error(err error, msg string, keysAndValues ...any) {
	l.materialized().Error(err, msg, keysAndValues...)
}

func (l *lazyValues) materialized() logr.LogSink {
	if len(l.values) == 0 {
		return l.sink
	}
	return l.sink.WithValues(l.values...)
}

func (l *lazyValues) WithValues(keysAndValues ...any) logr.LogSink {
	return &lazyValues{sink: l.sink, values: append(slices.Clip(l.values), keysAndValues...)}
}

// WithName names the sink under it at once: the values kept so far must stay inside the name, as they would
// have without lazyValues.
func (l *lazyValues) WithName(name string) logr.LogSink {
	return &lazyValues{sink: l.materialized().WithName(name)}
}

func (l *lazyValues) WithCallDepth(depth int) logr.LogSink {
	cd, ok := l.sink.(logr.CallDepthLogSink)
	if !ok {
		return l
	}
	return &lazyValues{sink: cd.WithCallDepth(depth), values: l.values}
}

// taskLogConstructor gives each AsyncTask reconcile the logger controller-runtime's builder would (the same
// keys), with lazyValues under it.
func taskLogConstructor(base logr.Logger) func(*reconcile.Request) logr.Logger {
	base = withLazyValues(base.WithValues("controller", asyncTaskControllerName,
		"controllerGroup", v1alpha1.GroupVersion.Group, "controllerKind", "AsyncTask"))
	return func(req *reconcile.Request) logr.Logger {
		if req == nil {
			return base
		}
		return base.WithValues("AsyncTask", klog.KRef(req.Namespace, req.Name), "namespace", req.Namespace, "name", req.Name)
	}
}
