package controller

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/operation"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/registry"
)

// Defaults applied when a backend spec leaves a field out (the CRD defaults them too; these cover objects
// written before a default existed).
const (
	defaultPollInterval   = 10 * time.Second
	defaultRequestTimeout = 10 * time.Second
	defaultQPS            = 20
	defaultBurst          = 40
)

// backendKey identifies a TaskBackend (with its namespace) or a ClusterTaskBackend (namespace "").
type backendKey struct {
	Kind      v1alpha1.BackendKind
	Namespace string
	Name      string
}

func (k backendKey) String() string {
	if k.Namespace == "" {
		return fmt.Sprintf("%s %s", k.Kind, k.Name)
	}
	return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name)
}

// backendKeyOf returns the key of the backend a task refers to.
func backendKeyOf(task *v1alpha1.AsyncTask) backendKey {
	key := backendKey{Kind: task.Spec.BackendRef.Kind, Name: task.Spec.BackendRef.Name}
	if key.Kind == "" {
		key.Kind = v1alpha1.BackendKindTaskBackend
	}
	if key.Kind == v1alpha1.BackendKindTaskBackend {
		key.Namespace = task.Namespace
	}
	return key
}

// connection is a usable backend: the vendor client built from one version of the backend and its Secrets.
type connection struct {
	fingerprint string
	// changes is connector.changes when the backend and its Secrets were last read; guarded by connector.mu.
	changes uint64
	spec    v1alpha1.TaskBackendSpec
	backend backend.Backend
	client  *backend.Client
	// labels name the backend on its metrics.
	labels backendLabels
	// workers holds a token per poll in flight, so one backend cannot hold every worker of the operator.
	workers chan struct{}
	// operations are the backend's spec.operations, compiled: the jobs its tasks may start.
	operations map[string]*operation.Operation
}

// tryAcquireWorker takes one of the backend's worker slots, or reports that all are in use.
func (c *connection) tryAcquireWorker() bool {
	select {
	case c.workers <- struct{}{}:
		return true
	default:
		return false
	}
}

func (c *connection) releaseWorker() { <-c.workers }

// connector builds one connection per backend and keeps it while the backend and its Secrets are unchanged, so
// every task of a backend shares one HTTP client, rate limiter and session.
type connector struct {
	// lookup finds the vendor package that builds a backend of a type (registry.Lookup, or a fake in tests).
	lookup func(v1alpha1.BackendType) (backend.Factory, error)
	reader client.Reader
	// secrets reads Secrets; never read them through reader, which would cache every Secret of the cluster.
	secrets *secretReader
	// network is the policy each kind of backend connects under.
	network map[v1alpha1.BackendKind]backend.NetworkPolicy
	// forbidNamespaced refuses every TaskBackend (--forbid-namespaced-backends).
	forbidNamespaced bool
	// workersPerBackend is how many polls of one backend may be in flight at once.
	workersPerBackend int
	// rateShare is how many replicas poll each backend (the ring's members; nil: one): each replica keeps to
	// its share of the backend's rate limit, so that together they keep to all of it.
	rateShare func() int
	// ownsBackend reports whether this replica owns a backend on the ring (nil: it owns all). After a refused
	// login only the owner tries again on the regular schedule; the others wait MaxLoginBackoff, so that N
	// replicas do not lock a vendor account N times faster.
	ownsBackend func(types.UID) bool

	// namespaceWorkers bounds the polls in flight of each namespace's TaskBackends together, so that a tenant
	// with many slow backends cannot hold every worker either.
	namespaceWorkers *workerShares

	// changes counts the changes of backends and of the Secrets they read, as the watches report them
	// (changed); a connection built at the current count is used without reading its backend again.
	changes atomic.Uint64

	mu    sync.Mutex
	conns map[backendKey]*connection
}

// changed records that a backend, or a Secret a backend reads, changed: every connection is read again before
// its next use. The watches call it after the cache holds the change.
func (c *connector) changed() { c.changes.Add(1) }

// connectForPoll is connect for a poll: while no backend or Secret changed since the backend's connection was
// built, it is used without reading the backend and its Secrets again (only a ClusterTaskBackend's
// allowedNamespaces is checked for the task's namespace, whose labels may change alone).
func (c *connector) connectForPoll(ctx context.Context, key backendKey, taskNamespace string) (*connection, error) {
	c.mu.Lock()
	conn, ok := c.conns[key]
	current := ok && conn.changes == c.changes.Load()
	c.mu.Unlock()
	if !current {
		return c.connect(ctx, key, taskNamespace)
	}
	if key.Kind == v1alpha1.BackendKindClusterTaskBackend {
		if err := c.checkAllowed(ctx, key, conn.spec.AllowedNamespaces, taskNamespace); err != nil {
			return nil, err
		}
	}
	return conn, nil
}

// workerShares hands out at most size worker slots per key.
type workerShares struct {
	size   int
	mu     sync.Mutex
	shares map[string]chan struct{}
}

// tryAcquire takes one of key's slots, or reports that all are in use.
func (w *workerShares) tryAcquire(key string) bool {
	w.mu.Lock()
	share, ok := w.shares[key]
	if !ok {
		share = make(chan struct{}, w.size)
		w.shares[key] = share
	}
	w.mu.Unlock()
	select {
	case share <- struct{}{}:
		return true
	default:
		return false
	}
}

// release gives back a slot taken by tryAcquire.
func (w *workerShares) release(key string) {
	w.mu.Lock()
	share := w.shares[key]
	w.mu.Unlock()
	<-share
}

func newConnector(reader client.Reader, secrets *secretReader, opts Options) *connector {
	network := map[v1alpha1.BackendKind]backend.NetworkPolicy{}
	for _, kind := range []v1alpha1.BackendKind{v1alpha1.BackendKindTaskBackend, v1alpha1.BackendKindClusterTaskBackend} {
		network[kind] = opts.networkPolicy(kind)
	}
	lookup := opts.BackendFactory
	if lookup == nil {
		lookup = registry.Lookup
	}
	return &connector{lookup: lookup, reader: reader, secrets: secrets, network: network, forbidNamespaced: opts.ForbidNamespacedBackends,
		workersPerBackend: opts.workersPerBackend(), conns: map[backendKey]*connection{},
		namespaceWorkers: &workerShares{size: opts.workersPerNamespace(), shares: map[string]chan struct{}{}}}
}

// connect returns the connection for a backend, rebuilding it when the backend or a Secret it uses changed.
// taskNamespace, when not empty, is the namespace of the task that asks: a ClusterTaskBackend whose
// allowedNamespaces does not select it is refused (reason BackendNotAllowed) before its Secrets are read.
// Errors are *backend.Error, of the connect-time kinds or KindInvalidConfig.
func (c *connector) connect(ctx context.Context, key backendKey, taskNamespace string) (*connection, error) {
	if c.forbidNamespaced && key.Kind != v1alpha1.BackendKindClusterTaskBackend {
		// Refused before anything is read: neither the backend nor its Secrets are looked at.
		c.forget(key)
		return nil, &backend.Error{Kind: backend.KindInvalidConfig, Message: fmt.Sprintf(
			"%s cannot be used: namespaced backends are disabled by the operator's --forbid-namespaced-backends flag; use a ClusterTaskBackend", key)}
	}
	changes := c.changes.Load() // before reading, so that a change while reading is read again next time
	spec, uid, generation, err := c.getBackendSpec(ctx, key)
	if err != nil {
		c.forget(key)
		return nil, err
	}
	if taskNamespace != "" && key.Kind == v1alpha1.BackendKindClusterTaskBackend {
		if err := c.checkAllowed(ctx, key, spec.AllowedNamespaces, taskNamespace); err != nil {
			return nil, err
		}
	}
	creds, credsVersion, err := c.credentials(ctx, key, spec)
	if err != nil {
		return nil, err
	}
	roots, caVersion, err := c.rootCAs(ctx, key, spec)
	if err != nil {
		return nil, err
	}
	share, owner := 1, true
	if c.rateShare != nil {
		share = c.rateShare()
	}
	if c.ownsBackend != nil {
		owner = c.ownsBackend(uid)
	}
	fingerprint := fmt.Sprintf("%s/%d/%s/%s/%d/%t", uid, generation, credsVersion, caVersion, share, owner)

	c.mu.Lock()
	defer c.mu.Unlock()
	if conn, ok := c.conns[key]; ok && conn.fingerprint == fingerprint {
		conn.changes = changes
		return conn, nil
	}
	conn, err := c.buildConnection(labelsFor(key, spec.Type), spec, creds, roots, c.network[key.Kind], share, owner)
	if err == nil {
		conn.workers = make(chan struct{}, c.workersPerBackend)
	}
	if err != nil {
		return nil, err
	}
	conn.fingerprint, conn.changes = fingerprint, changes
	if old, ok := c.conns[key]; ok {
		old.client.Close()
	}
	c.conns[key] = conn
	return conn, nil
}

// forget drops a backend's connection, and with it the vendor session.
func (c *connector) forget(key backendKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.conns[key]; ok {
		old.client.Close()
		delete(c.conns, key)
	}
}

// buildConnection builds the vendor client of one version of a backend: its HTTP client, under the kind's
// network policy, and the Backend its vendor package's factory makes of them.
// share is how many replicas split the backend's rate limit; owner says whether this replica retries refused
// logins on the regular schedule (see ownsBackend).
func (c *connector) buildConnection(labels backendLabels, spec v1alpha1.TaskBackendSpec, creds backend.Credentials, roots *x509.CertPool, network backend.NetworkPolicy, share int, owner bool) (*connection, error) {
	factory, err := c.lookup(spec.Type)
	if err != nil {
		return nil, &backend.Error{Kind: backend.KindInvalidConfig, Message: err.Error()}
	}
	opts := backend.ClientOptions{
		Timeout: durationOr(spec.RequestTimeout, defaultRequestTimeout),
		QPS:     defaultQPS,
		Burst:   defaultBurst,
		RootCAs: roots,
		// Checked on every connection, so a backend URL cannot reach metadata or API server addresses.
		NetworkPolicy: network,
		OnRateLimitWait: func(wait time.Duration) {
			rateLimitWaits.WithLabelValues(labels[:]...).Inc()
			rateLimitWaitSeconds.WithLabelValues(labels[:]...).Add(wait.Seconds())
		},
	}
	if spec.RateLimit != nil {
		opts.QPS, opts.Burst = float64(spec.RateLimit.QPS), int(spec.RateLimit.Burst)
	}
	if share > 1 {
		opts.QPS, opts.Burst = opts.QPS/float64(share), max(1, opts.Burst/share)
	}
	if spec.MaxResponseBytes != nil {
		opts.MaxBodyBytes = *spec.MaxResponseBytes
	}
	if spec.TLS != nil {
		opts.ServerName = spec.TLS.ServerName
		opts.InsecureSkipVerify = spec.TLS.InsecureSkipVerify
	}
	// Compiled before anything is built: a backend whose operations are not valid is InvalidConfig, as one whose
	// http.expressions are not.
	operations, err := operation.Compile(spec)
	if err != nil {
		return nil, &backend.Error{Kind: backend.KindInvalidConfig, Message: upperFirst(err.Error())}
	}
	httpClient := backend.NewClient(opts)
	firstLoginRetry := durationOr(spec.PollInterval, defaultPollInterval)
	if !owner {
		firstLoginRetry = backend.MaxLoginBackoff
	}
	b, err := factory(backend.Config{Spec: spec, Credentials: creds, Client: httpClient, OnLogin: vendorLogins.WithLabelValues(labels[:]...).Inc,
		FirstLoginRetry: firstLoginRetry})
	if err != nil {
		httpClient.Close()
		return nil, &backend.Error{Kind: backend.KindInvalidConfig, Message: upperFirst(err.Error())}
	}
	return &connection{spec: spec, backend: b, client: httpClient, labels: labels, operations: operations}, nil
}

// checkAllowed refuses a task namespace that a ClusterTaskBackend's allowedNamespaces does not select. The
// namespace's labels are read from a metadata-only cache of Namespaces.
func (c *connector) checkAllowed(ctx context.Context, key backendKey, allowed *metav1.LabelSelector, namespace string) error {
	if allowed == nil {
		return nil
	}
	selector, err := metav1.LabelSelectorAsSelector(allowed)
	if err != nil {
		return &backend.Error{Kind: backend.KindInvalidConfig, Message: fmt.Sprintf("%s has an invalid spec.allowedNamespaces: %v", key, err)}
	}
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := c.reader.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		if !apierrors.IsNotFound(err) {
			return &backend.Error{Kind: backend.KindUnreachable, Message: fmt.Sprintf("Cannot read namespace %s: %v", namespace, err)}
		}
		ns.Name = namespace // a namespace being deleted: selected by name only
	}
	nsLabels := labels.Set(ns.GetLabels())
	if _, ok := nsLabels[corev1.LabelMetadataName]; !ok {
		nsLabels = labels.Merge(nsLabels, labels.Set{corev1.LabelMetadataName: namespace})
	}
	if !selector.Matches(nsLabels) {
		return &backend.Error{Kind: backend.KindNotAllowed, Message: fmt.Sprintf(
			"%s does not allow tasks of namespace %s: its spec.allowedNamespaces does not select the namespace's labels", key, namespace)}
	}
	return nil
}

// typeOf returns the type of a backend, "" when it cannot be read: the labels of a poll that could not
// connect name the backend only when it exists.
func (c *connector) typeOf(ctx context.Context, key backendKey) v1alpha1.BackendType {
	spec, _, _, err := c.getBackendSpec(ctx, key)
	if err != nil {
		return ""
	}
	return spec.Type
}

// withLoginMetrics returns ctx under which the vendor's refused logins count against the connection's backend.
func (c *connection) withLoginMetrics(ctx context.Context) context.Context {
	return backend.WithLoginRefused(ctx, vendorLoginsRefused.WithLabelValues(c.labels[:]...).Inc)
}

// getBackendSpec reads the backend object.
func (c *connector) getBackendSpec(ctx context.Context, key backendKey) (v1alpha1.TaskBackendSpec, types.UID, int64, error) {
	var obj client.Object
	var spec *v1alpha1.TaskBackendSpec
	switch key.Kind {
	case v1alpha1.BackendKindClusterTaskBackend:
		b := &v1alpha1.ClusterTaskBackend{}
		obj, spec = b, &b.Spec
	default:
		b := &v1alpha1.TaskBackend{}
		obj, spec = b, &b.Spec
	}
	if err := c.reader.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: key.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return v1alpha1.TaskBackendSpec{}, "", 0, &backend.Error{Kind: backend.KindBackendNotFound,
				Message: fmt.Sprintf("%s not found", key)}
		}
		return v1alpha1.TaskBackendSpec{}, "", 0, &backend.Error{Kind: backend.KindUnreachable,
			Message: fmt.Sprintf("Cannot read %s: %v", key, err)}
	}
	return *spec, obj.GetUID(), obj.GetGeneration(), nil
}

// credentials reads the credentials Secret; a backend without one gets empty credentials.
func (c *connector) credentials(ctx context.Context, key backendKey, spec v1alpha1.TaskBackendSpec) (backend.Credentials, string, error) {
	ref := spec.CredentialsSecretRef
	if ref == nil {
		return backend.Credentials{}, "none", nil
	}
	secret, err := c.getSecret(ctx, secretNamespace(key, ref.Namespace), ref.Name, "credentials")
	if err != nil {
		return nil, "", err
	}
	return backend.Credentials(secret.Data), string(secret.UID) + "@" + secret.ResourceVersion, nil
}

// rootCAs reads the CA bundle of tls.caSecretRef; nil means the system roots.
func (c *connector) rootCAs(ctx context.Context, key backendKey, spec v1alpha1.TaskBackendSpec) (*x509.CertPool, string, error) {
	if spec.TLS == nil || spec.TLS.CASecretRef == nil {
		return nil, "system", nil
	}
	ref := spec.TLS.CASecretRef
	secret, err := c.getSecret(ctx, secretNamespace(key, ref.Namespace), ref.Name, "CA")
	if err != nil {
		return nil, "", err
	}
	dataKey := ref.Key
	if dataKey == "" {
		dataKey = "ca.crt"
	}
	pem, ok := secret.Data[dataKey]
	if !ok {
		return nil, "", &backend.Error{Kind: backend.KindInvalidConfig,
			Message: fmt.Sprintf("CA Secret %s/%s has no key %q", secret.Namespace, secret.Name, dataKey)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", &backend.Error{Kind: backend.KindInvalidConfig,
			Message: fmt.Sprintf("CA Secret %s/%s key %q holds no PEM certificate", secret.Namespace, secret.Name, dataKey)}
	}
	return pool, string(secret.UID) + "@" + secret.ResourceVersion, nil
}

func (c *connector) getSecret(ctx context.Context, namespace, name, purpose string) (*corev1.Secret, error) {
	secret, err := c.secrets.Get(ctx, namespace, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &backend.Error{Kind: backend.KindSecretNotFound,
				Message: fmt.Sprintf("%s Secret %s/%s not found", purpose, namespace, name)}
		}
		return nil, &backend.Error{Kind: backend.KindUnreachable,
			Message: fmt.Sprintf("Cannot read %s Secret %s/%s: %v", purpose, namespace, name, err)}
	}
	return secret, nil
}

// secretNamespace is where a backend's Secret lives: the TaskBackend's own namespace, or the namespace a
// ClusterTaskBackend names.
func secretNamespace(key backendKey, refNamespace string) string {
	if key.Kind == v1alpha1.BackendKindTaskBackend {
		return key.Namespace
	}
	return refNamespace
}
