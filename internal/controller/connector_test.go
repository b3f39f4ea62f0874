package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
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
