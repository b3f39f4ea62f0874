package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// TestPollsReuseAConnectionUntilABackendOrSecretChanges: a poll reads its backend and Secret only when the
// watches reported a change since its connection was built; a change read again builds a new connection, and
// the backend check always reads.
func TestPollsReuseAConnectionUntilABackendOrSecretChanges(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	spec := apigSpec()
	spec.URL = "https://apig.example"
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
	tb := &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "apig"}, Spec: spec}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "creds"}, Data: map[string][]byte{"token": []byte("t")}}
	cluster := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(tb, secret).Build()
	reads := map[string]int{}
	counted := interceptor.NewClient(cluster, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			switch obj.(type) {
			case *v1alpha1.TaskBackend:
				reads["backend"]++
			case *metav1.PartialObjectMetadata:
				reads["secret metadata"]++
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	fake := &fakeBackend{}
	conns := newConnector(counted, newSecretReader(counted, cluster), withTestNetwork(Options{BackendFactory: fake.lookup}))
	key := backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: "team", Name: "apig"}

	first, err := conns.connectForPoll(ctx, key, "team")
	g.Expect(err).NotTo(HaveOccurred())
	for range 3 {
		again, err := conns.connectForPoll(ctx, key, "team")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(again).To(BeIdenticalTo(first))
	}
	g.Expect(reads).To(Equal(map[string]int{"backend": 1, "secret metadata": 1}), "four polls, one read of each")

	conns.changed() // some other backend changed: read again, nothing new, the same connection
	again, err := conns.connectForPoll(ctx, key, "team")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeIdenticalTo(first))
	g.Expect(reads).To(Equal(map[string]int{"backend": 2, "secret metadata": 2}))

	g.Expect(cluster.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	secret.Data["token"] = []byte("rotated")
	g.Expect(cluster.Update(ctx, secret)).To(Succeed())
	conns.changed()
	rotated, err := conns.connectForPoll(ctx, key, "team")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rotated).NotTo(BeIdenticalTo(first), "a rotated Secret builds a new connection")

	_, err = conns.connect(ctx, key, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reads["backend"]).To(Equal(4), "the backend check reads the backend every time")
}

// With a ring of three, a backend's rate limit is split in three, and after a refused login only the
// backend's owner tries again on the regular schedule; a change of ring rebuilds the connection.
func TestRingSplitsRateLimitsAndLeavesLoginRetriesToTheBackendsOwner(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	spec := apigSpec()
	spec.URL = "https://apig.example"
	spec.PollInterval = &metav1.Duration{Duration: 20 * time.Second}
	spec.RateLimit = &v1alpha1.RateLimit{QPS: 30, Burst: 9}
	tb := &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "apig", UID: "backend-uid"}, Spec: spec}
	cluster := fake.NewClientBuilder().WithScheme(testScheme).WithObjects(tb).Build()
	var built []backend.Config
	lookup := func(v1alpha1.BackendType) (backend.Factory, error) {
		return func(cfg backend.Config) (backend.Backend, error) {
			built = append(built, cfg)
			return &fakeBackend{}, nil
		}, nil
	}
	conns := newConnector(cluster, newSecretReader(cluster, cluster), withTestNetwork(Options{BackendFactory: lookup}))
	members, owned := 3, false
	conns.rateShare = func() int { return members }
	conns.ownsBackend = func(uid types.UID) bool {
		g.Expect(uid).To(Equal(types.UID("backend-uid")))
		return owned
	}
	key := backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: "team", Name: "apig"}

	_, err := conns.connectForPoll(ctx, key, "team")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(built).To(HaveLen(1))
	qps, burst := built[0].Client.RateLimit()
	g.Expect(qps).To(BeNumerically("~", 10, 1e-9))
	g.Expect(burst).To(Equal(3))
	g.Expect(built[0].FirstLoginRetry).To(Equal(backend.MaxLoginBackoff), "not the backend's owner: refused logins wait long")

	members, owned = 2, true // the ring changed: this replica owns the backend now
	conns.changed()
	_, err = conns.connectForPoll(ctx, key, "team")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(built).To(HaveLen(2), "a change of the ring builds a new connection")
	qps, burst = built[1].Client.RateLimit()
	g.Expect(qps).To(BeNumerically("~", 15, 1e-9))
	g.Expect(burst).To(Equal(4))
	g.Expect(built[1].FirstLoginRetry).To(Equal(20*time.Second), "the owner retries after the poll interval")
}
