package controller

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/go-logr/zapr"
	. "github.com/onsi/gomega"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// TestLazyValuesWriteWhatEagerValuesWould: a line written through lazyValues carries every value given before
// (also across WithName), names the caller's line, and a reconcile's logger has controller-runtime's keys.
func TestLazyValuesWriteWhatEagerValuesWould(t *testing.T) {
	g := NewWithT(t)
	core, logs := observer.New(zapcore.InfoLevel)
	log := withLazyValues(zapr.NewLogger(zap.New(core, zap.AddCaller())))

	log.WithValues("a", 1).WithValues("b", "two").Info("hello", "c", 3)
	log.WithValues("a", 1).WithName("sub").Error(errors.New("boom"), "failed")
	log.V(1).WithValues("hidden", true).Info("not written at info level")

	entries := logs.AllUntimed()
	g.Expect(entries).To(HaveLen(2))
	g.Expect(entries[0].Message).To(Equal("hello"))
	g.Expect(entries[0].ContextMap()).To(Equal(map[string]any{"a": int64(1), "b": "two", "c": int64(3)}))
	g.Expect(filepath.Base(entries[0].Caller.File)).To(Equal("logging_test.go"), "the caller is the line that logged, not lazyValues")
	g.Expect(entries[1].LoggerName).To(Equal("sub"))
	g.Expect(entries[1].ContextMap()).To(HaveKeyWithValue("a", int64(1)))
	g.Expect(entries[1].ContextMap()).To(HaveKeyWithValue("error", "boom"))

	logs.TakeAll()
	reconcileLog := taskLogConstructor(zapr.NewLogger(zap.New(core)))(&reconcile.Request{NamespacedName: taskKey(scheduledTask("t"))})
	reconcileLog.Info("polled")
	g.Expect(logs.AllUntimed()[0].ContextMap()).To(And(
		HaveKeyWithValue("controller", "asynctask"), HaveKeyWithValue("controllerKind", "AsyncTask"),
		HaveKeyWithValue("namespace", "ns"), HaveKeyWithValue("name", "t"), HaveKey("AsyncTask")))
}
