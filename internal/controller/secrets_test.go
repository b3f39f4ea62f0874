package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// countingSecretReader returns a secretReader over a fake cluster holding objs, whose metadata reads see the
// same objects, and a pointer to how many Secrets it read from the "API server".
func countingSecretReader(t *testing.T, objs ...client.Object) (*secretReader, client.Client, *int) {
	t.Helper()
	cluster := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(objs...).Build()
	liveGets := 0
	live := interceptor.NewClient(cluster.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); !ok {
				t.Errorf("the live reader was asked for a %T", obj)
			}
			liveGets++
			return c.Get(ctx, key, obj, opts...)
		},
	})
	metadata := interceptor.NewClient(cluster.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*metav1.PartialObjectMetadata); !ok {
				t.Errorf("the metadata cache was asked for a %T: that would cache every Secret", obj)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	return newSecretReader(metadata, live), cluster, &liveGets
}

func TestSecretReaderReadsASecretAgainOnlyWhenItChanged(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "creds"}, Data: map[string][]byte{"token": []byte("one")}}
	reader, cluster, liveGets := countingSecretReader(t, secret)

	for range 3 {
		got, err := reader.Get(ctx, "team", "creds")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(got.Data["token"])).To(Equal("one"))
		got.Data["token"] = []byte("changed by the caller")
	}
	g.Expect(*liveGets).To(Equal(1), "an unchanged Secret is read once")

	rotated := &corev1.Secret{}
	g.Expect(cluster.Get(ctx, client.ObjectKeyFromObject(secret), rotated)).To(Succeed())
	rotated.Data["token"] = []byte("two")
	g.Expect(cluster.Update(ctx, rotated)).To(Succeed())
	got, err := reader.Get(ctx, "team", "creds")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(got.Data["token"])).To(Equal("two"), "a rotated Secret is read at the next Get")
	g.Expect(got.ResourceVersion).To(Equal(rotated.ResourceVersion))
	g.Expect(*liveGets).To(Equal(2))
}

func TestSecretReaderForgetsADeletedSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "creds"}, Data: map[string][]byte{"token": []byte("one")}}
	reader, cluster, _ := countingSecretReader(t, secret)
	_, err := reader.Get(ctx, "team", "creds")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reader.len()).To(Equal(1))

	g.Expect(cluster.Delete(ctx, secret)).To(Succeed())
	_, err = reader.Get(ctx, "team", "creds")
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "want NotFound, got %v", err)
	g.Expect(reader.len()).To(BeZero(), "a deleted Secret is dropped")
}

func TestSecretReaderEvictsSecretsNoBackendReadsAnyMore(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	reader, _, liveGets := countingSecretReader(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "old"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "in-use"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "new"}},
	)
	now := time.Now()
	reader.now = func() time.Time { return now }
	for _, name := range []string{"old", "in-use"} {
		_, err := reader.Get(ctx, "team", name)
		g.Expect(err).NotTo(HaveOccurred())
	}
	for range 4 { // in-use is read at every poll; old is not read any more
		now = now.Add(secretIdleEviction / 4)
		_, err := reader.Get(ctx, "team", "in-use")
		g.Expect(err).NotTo(HaveOccurred())
	}
	_, err := reader.Get(ctx, "team", "new")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reader.len()).To(Equal(2), "old is evicted; in-use and new stay")
	g.Expect(*liveGets).To(Equal(3), "in-use was read from the API server once")
}

// secretAccessSpy is a manager cache that records in which form Secrets are asked of it: a *corev1.Secret (or
// its list, or its informer by kind) would make the cache hold every Secret of the cluster, data included.
type secretAccessSpy struct {
	cache.Cache
	mu       sync.Mutex
	full     []string
	metadata []string
}

func (s *secretAccessSpy) record(obj any, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch o := obj.(type) {
	case *corev1.Secret, *corev1.SecretList:
		s.full = append(s.full, fmt.Sprintf("%T %s", obj, key))
	case *metav1.PartialObjectMetadata:
		if o.Kind == "Secret" {
			s.metadata = append(s.metadata, key)
		}
	}
}

func (s *secretAccessSpy) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s.record(obj, key.String())
	return s.Cache.Get(ctx, key, obj, opts...)
}

func (s *secretAccessSpy) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	s.record(list, "list")
	return s.Cache.List(ctx, list, opts...)
}

func (s *secretAccessSpy) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	s.record(obj, "informer")
	return s.Cache.GetInformer(ctx, obj, opts...)
}

func (s *secretAccessSpy) GetInformerForKind(ctx context.Context, gvk schema.GroupVersionKind, opts ...cache.InformerGetOption) (cache.Informer, error) {
	if gvk == corev1.SchemeGroupVersion.WithKind("Secret") {
		s.record(&corev1.Secret{}, "informer for kind")
	}
	return s.Cache.GetInformerForKind(ctx, gvk, opts...)
}

func (s *secretAccessSpy) fullAccesses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.full...)
}

func (s *secretAccessSpy) metadataReads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.metadata...)
}

// startOperatorWithSpy starts another operator, set up as cmd/main.go does, whose cache is a secretAccessSpy.
func startOperatorWithSpy(t *testing.T, opts Options) (ctrl.Manager, *secretAccessSpy) {
	t.Helper()
	mgrOptions, err := ManagerOptions(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	spy := &secretAccessSpy{}
	mgrOptions.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgrOptions.NewCache = func(cfg *rest.Config, opts cache.Options) (cache.Cache, error) {
		c, err := cache.New(cfg, opts)
		spy.Cache = c
		return spy, err
	}
	mgr, err := ctrl.NewManager(testConfig, mgrOptions)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := SetupWithManager(ctx, mgr, opts); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return mgr, spy
}

// Unrelated Secrets: 100 of nearly 1 MiB (the largest a Secret may hold), each also carrying a
// last-applied-configuration annotation as `kubectl apply` writes, which holds Secret values in metadata.
const (
	unrelatedSecrets         = 100
	unrelatedSecretDataBytes = 1<<20 - 1<<10
	unrelatedAnnotationBytes = 64 << 10
	// heapGrowthBound is generous: metadata of 100 Secrets is a few KiB; their data would be 100 MiB per
	// manager in this process (the suite's and this test's).
	heapGrowthBound = 20 << 20
)

// TestUnrelatedSecretsAreNotCached: 100 MiB of Secrets no backend uses do not reach the manager's memory.
// Deterministically, nothing asks the manager's cache for a full Secret (which would start an informer of
// every Secret's data), while the backend's Secret is still read and used; the metadata cached of the
// unrelated Secrets holds no annotations; and the heap of this process, which runs two managers, grows by
// less than heapGrowthBound after a garbage collection.
func TestUnrelatedSecretsAreNotCached(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	mgr, spy := startOperatorWithSpy(t, Options{FieldOwner: "operator-secrets-test"})
	ns := newNamespace(t)
	backend := createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	waitForBackendReady(t, backend, metav1.ConditionTrue, v1alpha1.ReasonReady)
	g.Eventually(spy.metadataReads, eventually, tick).Should(ContainElement(ns+"/apig-creds"),
		"this test's operator reads the backend's Secret through the metadata cache")

	heapBefore := heapInuseAfterGC()
	unrelated := newNamespace(t)
	t.Cleanup(func() {
		_ = k8sClient.DeleteAllOf(context.Background(), &corev1.Secret{}, client.InNamespace(unrelated))
	})
	data := bytes.Repeat([]byte{'x'}, unrelatedSecretDataBytes)
	lastApplied := strings.Repeat("y", unrelatedAnnotationBytes)
	errs := make([]error, unrelatedSecrets)
	var created sync.WaitGroup
	slots := make(chan struct{}, 4) // a few creations at a time, as the machine may be shared
	for i := range unrelatedSecrets {
		created.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			errs[i] = k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: unrelated, Name: fmt.Sprintf("helm-release-%03d", i),
					Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied}},
				Data: map[string][]byte{"release": data},
			})
		})
	}
	created.Wait()
	g.Expect(errors.Join(errs...)).To(Succeed())

	cached := &metav1.PartialObjectMetadataList{}
	cached.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	g.Eventually(func(g Gomega) {
		g.Expect(mgr.GetCache().List(ctx, cached, client.InNamespace(unrelated))).To(Succeed())
		g.Expect(cached.Items).To(HaveLen(unrelatedSecrets), "the watch has delivered every unrelated Secret")
	}, eventually, tick).Should(Succeed())
	for _, m := range cached.Items {
		g.Expect(m.Annotations).To(BeEmpty(), "annotations can hold Secret values and are not cached")
		g.Expect(m.ResourceVersion).NotTo(BeEmpty(), "the secretReader compares it")
	}

	growth := int64(heapInuseAfterGC()) - int64(heapBefore)
	t.Logf("Heap in use after %.0f MiB of unrelated Secrets: %+.1f MiB", float64(unrelatedSecrets*unrelatedSecretDataBytes)/(1<<20), float64(growth)/(1<<20))
	g.Expect(spy.fullAccesses()).To(BeEmpty(), "no full Secret is asked of the manager's cache")
	g.Expect(growth).To(BeNumerically("<", heapGrowthBound))
}

// heapInuseAfterGC is the heap in use once garbage is collected and returned.
func heapInuseAfterGC() uint64 {
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func TestSecretReadsDoNotLogBodies(t *testing.T) {
	var logged []string
	logger := funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{Verbosity: 10})
	ctx := withoutBodyLogs(log.IntoContext(context.Background(), logger))
	requestLogger := log.FromContext(ctx).WithValues("verb", "GET").WithName("rest")
	requestLogger.V(8).Info("Response Body", "body", "the Secret's values")
	requestLogger.V(6).Info("Request", "url", "/api/v1/namespaces/team/secrets/creds")
	if len(logged) != 1 || strings.Contains(logged[0], "values") {
		t.Errorf("want only the V(6) request line logged, got %q", logged)
	}
}
