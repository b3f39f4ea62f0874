package controller

import (
	"context"
	"io"
	"testing"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// The per-poll savings of issue #15, each against what it replaced (docs/performance.md).

// BenchmarkReconcileLogger: the logger controller-runtime builds for every reconcile (the task's name and a
// reconcile ID as values), eager as zap makes it, and with lazyValues; nothing is logged, as in almost every
// reconcile.
func BenchmarkReconcileLogger(b *testing.B) {
	base := zapr.NewLogger(zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)))
	req := &reconcile.Request{NamespacedName: taskKey(scheduledTask("t-00042"))}
	b.Run("eager", func(b *testing.B) {
		b.ReportAllocs()
		log := base.WithValues("controller", "asynctask", "controllerGroup", "tasks.asynctask.dev", "controllerKind", "AsyncTask")
		for b.Loop() {
			_ = log.WithValues("AsyncTask", klog.KRef(req.Namespace, req.Name), "namespace", req.Namespace, "name", req.Name).
				WithValues("reconcileID", "6b1e4d6a-9c1f-4e2b-8f3a-0c5d7e9f1a2b")
		}
	})
	b.Run("lazy", func(b *testing.B) {
		b.ReportAllocs()
		construct := taskLogConstructor(base)
		for b.Loop() {
			_ = construct(req).WithValues("reconcileID", "6b1e4d6a-9c1f-4e2b-8f3a-0c5d7e9f1a2b")
		}
	})
}

// BenchmarkConnectForPoll: a poll's connection, reading the backend and its Secret (as every poll did) and
// reused while nothing changed. The reads go to controller-runtime's fake client here, which costs more per
// read than the informer cache; the whole-process figure is in docs/performance.md.
func BenchmarkConnectForPoll(b *testing.B) {
	ctx := context.Background()
	spec := apigSpec()
	spec.URL = "https://apig.example"
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
	cluster := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(
		&v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "apig"}, Spec: spec},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "creds"}, Data: map[string][]byte{"token": []byte("t")}},
	).Build()
	fake := &fakeBackend{}
	conns := newConnector(cluster, newSecretReader(cluster, cluster), withTestNetwork(Options{BackendFactory: fake.lookup}))
	key := backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: "team", Name: "apig"}
	for name, connect := range map[string]func() (*connection, error){
		"read every poll":        func() (*connection, error) { return conns.connect(ctx, key, "team") },
		"reused while unchanged": func() (*connection, error) { return conns.connectForPoll(ctx, key, "team") },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := connect(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnchangedPollStatus: what a poll that saw nothing new costs before it decides not to write: a deep
// copy of the task read from the cache and a comparison of whole objects (before), or no copy and a
// comparison of the statuses (now).
func BenchmarkUnchangedPollStatus(b *testing.B) {
	task := cachedTask("t", v1alpha1.TaskPhaseRunning)
	task.Labels, task.Annotations, task.ManagedFields, task.OwnerReferences = nil, nil, nil, nil
	status := *task.Status.DeepCopy()
	b.Run("copy, compare objects", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			read := task.DeepCopy() // the cache's Get
			before := read.DeepCopy()
			read.Status = status
			if !statusEquality.DeepEqual(before, read) {
				b.Fatal("unchanged")
			}
		}
	})
	b.Run("no copy, compare statuses", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			read := *task // the cache's Get without a deep copy
			if !statusEquality.DeepEqual(read.Status, status) {
				b.Fatal("unchanged")
			}
		}
	})
}
