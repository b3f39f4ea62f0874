package controller

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// secretIdleEviction is how long a Secret no backend read stays in the secretReader. Referenced Secrets are
// read at every poll (seconds to minutes apart), so one not read for this long most likely lost its last
// backend; if not, the next read costs a single GET.
const secretIdleEviction = 10 * time.Minute

// secretMetadata is the metadata-only form in which the manager's cache holds Secrets.
func secretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// secretReader reads the Secrets backends refer to without caching every Secret of the cluster: the
// manager's cache watches Secrets as metadata only, and the data of the few Secrets in use is read from the
// API server and kept here until their resourceVersion changes (as cert-manager does). A Get of a full
// *corev1.Secret through the manager's cached client would instead start an informer holding every Secret
// of the cluster, Helm releases included.
type secretReader struct {
	// metadata is the manager's cached client; it is only ever asked for secretMetadata().
	metadata client.Reader
	// live reads from the API server (the manager's APIReader).
	live client.Reader
	// now is time.Now, except in tests.
	now func() time.Time

	mu        sync.Mutex
	secrets   map[types.NamespacedName]*cachedSecret
	lastSweep time.Time
}

// cachedSecret is one Secret read from the API server, and when a backend last read it.
type cachedSecret struct {
	secret   *corev1.Secret
	lastRead time.Time
}

func newSecretReader(metadata, live client.Reader) *secretReader {
	return &secretReader{metadata: metadata, live: live, now: time.Now, secrets: map[types.NamespacedName]*cachedSecret{}}
}

// Get returns the Secret namespace/name as the metadata cache currently knows it: the stored copy while its
// UID and resourceVersion match the cache, else one GET from the API server. Like a cached Get, it reports
// NotFound (an apierrors error) for a Secret the cache does not hold, and a cache error for a namespace the
// cache does not watch. The result is the caller's own copy.
func (r *secretReader) Get(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	current := secretMetadata()
	if err := r.metadata.Get(ctx, key, current); err != nil {
		if apierrors.IsNotFound(err) {
			r.drop(key)
		}
		return nil, err
	}
	if secret, ok := r.stored(key, current); ok {
		return secret, nil
	}
	secret := &corev1.Secret{}
	if err := r.live.Get(withoutBodyLogs(ctx), key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			r.drop(key)
		}
		return nil, err
	}
	// Stored as read, even if newer than the metadata cache (resourceVersions are opaque: which is newer
	// cannot be told); until the cache catches up, a Get costs one more read.
	secret.ManagedFields = nil
	r.store(key, secret)
	return secret.DeepCopy(), nil
}

// bodyLogLevel is the verbosity at which client-go logs request and response bodies; the body of a Secret
// GET holds the Secret's values.
const bodyLogLevel = 8

// withoutBodyLogs returns ctx with its logger capped below bodyLogLevel, for reading a Secret from the API
// server: client-go logs through the context's logger, and at --zap-log-level=8 or more it would write the
// Secret's values into the operator's log.
func withoutBodyLogs(ctx context.Context) context.Context {
	logger := log.FromContext(ctx)
	if logger.GetSink() == nil {
		return ctx
	}
	return log.IntoContext(ctx, logger.WithSink(cappedLogSink{logger.GetSink()}))
}

// cappedLogSink drops the messages at bodyLogLevel or more verbose.
type cappedLogSink struct{ logr.LogSink }

func (s cappedLogSink) Enabled(level int) bool {
	return level < bodyLogLevel && s.LogSink.Enabled(level)
}

func (s cappedLogSink) Info(level int, msg string, keysAndValues ...any) {
	if level < bodyLogLevel {
		s.LogSink.Info(level, msg, keysAndValues...)
	}
}

func (s cappedLogSink) WithValues(keysAndValues ...any) logr.LogSink {
	return cappedLogSink{s.LogSink.WithValues(keysAndValues...)}
}

func (s cappedLogSink) WithName(name string) logr.LogSink {
	return cappedLogSink{s.LogSink.WithName(name)}
}

// stored returns a copy of the stored Secret if it is the version current describes.
func (r *secretReader) stored(key types.NamespacedName, current *metav1.PartialObjectMetadata) (*corev1.Secret, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	entry, ok := r.secrets[key]
	if !ok || entry.secret.UID != current.UID || entry.secret.ResourceVersion != current.ResourceVersion {
		return nil, false
	}
	entry.lastRead = r.now()
	return entry.secret.DeepCopy(), true
}

func (r *secretReader) store(key types.NamespacedName, secret *corev1.Secret) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.secrets[key] = &cachedSecret{secret: secret, lastRead: now}
	r.evictIdle(now)
}

func (r *secretReader) drop(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.secrets, key)
}

// evictIdle drops the Secrets not read for secretIdleEviction, so that Secrets no backend refers to any more
// do not accumulate. It runs on stores, at most once a minute: reads of unchanged Secrets stay a map lookup.
// The caller holds r.mu.
func (r *secretReader) evictIdle(now time.Time) {
	if now.Sub(r.lastSweep) < time.Minute {
		return
	}
	r.lastSweep = now
	for key, entry := range r.secrets {
		if now.Sub(entry.lastRead) >= secretIdleEviction {
			delete(r.secrets, key)
		}
	}
}

// len is how many Secrets are stored, for tests.
func (r *secretReader) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.secrets)
}

// secretMetadataCache is the cache setting for Secrets, which the controllers watch as metadata only: of
// each Secret only what the secretReader and the watches use is kept (namespace, name, UID,
// resourceVersion). The rest goes because annotations can hold a Secret's values: `kubectl apply` copies the
// whole object, data included, into kubectl.kubernetes.io/last-applied-configuration.
func secretMetadataCache() (client.Object, cache.ByObject) {
	stripManagedFields := cache.TransformStripManagedFields()
	return secretMetadata(), cache.ByObject{Transform: func(in any) (any, error) {
		m, ok := in.(*metav1.PartialObjectMetadata)
		if !ok {
			return stripManagedFields(in)
		}
		m.ObjectMeta = metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: m.UID,
			ResourceVersion: m.ResourceVersion, DeletionTimestamp: m.DeletionTimestamp}
		return m, nil
	}}
}
