package controller

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/sharding"
)

// ownership decides what this replica works on: with a ring (Options.Ring), the tasks and backends whose
// ring keys it owns; without one, everything (a single replica, or the elected leader).
//
// A task's key is its UID; while its job is being started (spec.submit, not tracked yet), its backend's UID,
// so that one replica decides each operation's maxRunning queue. A backend's key is its UID: its owner checks
// it and writes its Ready condition.
type ownership struct {
	ring *sharding.Membership
}

func (o ownership) enabled() bool { return o.ring != nil }

func (o ownership) owns(key types.UID) bool { return o.ring == nil || o.ring.Owns(string(key)) }

// settledAt is when work gained by the ring's last change may start (see sharding.Membership.SettledAt).
func (o ownership) settledAt() time.Time {
	if o.ring == nil {
		return time.Time{}
	}
	return o.ring.SettledAt()
}

// joinedSettledAt is when this replica may start on work it holds since it joined the ring, not knowing who
// had it before (see sharding.Membership.JoinedSettledAt).
func (o ownership) joinedSettledAt() time.Time {
	if o.ring == nil {
		return time.Time{}
	}
	return o.ring.JoinedSettledAt()
}

// members is how many replicas share the work: a backend's rate limit is split between them.
func (o ownership) members() int {
	if o.ring == nil {
		return 1
	}
	return max(1, o.ring.Ring().Len())
}

// ringKey is the ring key of a task; backendUID returns the UID of a task's backend, "" when it is not known.
func ringKey(task *v1alpha1.AsyncTask, backendUID func(backendKey) types.UID) types.UID {
	if task.Spec.Submit != nil && !task.Status.Phase.Finished() && !tracking(task) {
		if uid := backendUID(backendKeyOf(task)); uid != "" {
			return uid
		}
	}
	return task.UID
}

// ownsTask reports whether this replica works on the task.
func (r *AsyncTaskReconciler) ownsTask(ctx context.Context, task *v1alpha1.AsyncTask) bool {
	if !r.ring.enabled() {
		return true
	}
	return r.ring.owns(ringKey(task, func(key backendKey) types.UID {
		_, uid, _, err := r.connector.getBackendSpec(ctx, key)
		if err != nil {
			return ""
		}
		return uid
	}))
}

// handoverQueue adds the objects a replica gained to its controller's queue (a source.Func keeps the queue).
type handoverQueue struct {
	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
}

func (h *handoverQueue) source() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.queue = q
		return nil
	})
}

// add queues requests; before the controller started there is no queue, and its initial list reconciles
// everything anyway.
func (h *handoverQueue) add(requests []reconcile.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.queue == nil {
		return
	}
	for _, req := range requests {
		h.queue.Add(req)
	}
}

// ringHandover moves work when the ring changes: the tasks and backends this replica gained are queued (a gained
// task is first polled at its moment of the interval after the change settled, see settledAt and
// scheduler.holdUntil), the tasks it lost leave its schedule, and the
// connections are rebuilt so that each backend's rate limit is split between the new number of members.
type ringHandover struct {
	client   client.Reader
	identity string
	schedule *scheduler
	tasks    *handoverQueue
	// backends holds the queues of the TaskBackend and ClusterTaskBackend controllers.
	backends map[v1alpha1.BackendKind]*handoverQueue
	changed  func()
	// settledAt is when the work gained by the change being handed over may start.
	settledAt func() time.Time
}

func (h *ringHandover) ringChanged(before, after *sharding.Ring) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	settled := h.settledAt()
	ringMembers.Set(float64(after.Len()))
	h.changed()
	wasMine := func(key types.UID) bool { return before.Owner(string(key)) == h.identity }
	isMine := func(key types.UID) bool { return after.Owner(string(key)) == h.identity }

	uids, err := backendUIDs(ctx, h.client)
	if err != nil {
		if !errors.As(err, new(*cache.ErrCacheNotStarted)) {
			log.FromContext(ctx).Error(err, "Cannot hand work over on a ring change")
		} // else the controllers have not started either: their first lists reconcile everything on the new ring
		return
	}
	gainedBackends := map[v1alpha1.BackendKind][]reconcile.Request{}
	for key, uid := range uids {
		if isMine(uid) && !wasMine(uid) {
			gainedBackends[key.Kind] = append(gainedBackends[key.Kind], reconcile.Request{NamespacedName: types.NamespacedName{Namespace: key.Namespace, Name: key.Name}})
		}
	}
	for kind, requests := range gainedBackends {
		h.backends[kind].add(requests)
	}

	tasks := &v1alpha1.AsyncTaskList{}
	if err := h.client.List(ctx, tasks, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list AsyncTasks for a ring change")
		return
	}
	var gained []reconcile.Request
	lost := 0
	for i := range tasks.Items {
		t := &tasks.Items[i]
		if t.Status.Phase.Finished() && t.Spec.TTLSecondsAfterFinished == nil {
			continue // nothing left to do for it
		}
		key := ringKey(t, func(k backendKey) types.UID { return uids[k] })
		switch was, is := wasMine(key), isMine(key); {
		case is && !was:
			gained = append(gained, reconcile.Request{NamespacedName: taskKey(t)})
			h.schedule.holdUntil(taskKey(t), t.UID, settled)
		case was && !is:
			lost++
			h.schedule.forget(taskKey(t), t.UID)
		}
	}
	ringHandovers.WithLabelValues("gained").Add(float64(len(gained)))
	ringHandovers.WithLabelValues("lost").Add(float64(lost))
	log.FromContext(ctx).Info("Ring changed: work handed over", "members", after.Members(), "tasksGained", len(gained), "tasksLost", lost)
	h.tasks.add(gained)
}

var (
	ringMembers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "asynctask_ring_members",
		Help: "Live members of the ring this replica sees (--sharding=ring); not exported with leader election.",
	})
	ringHandovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "asynctask_ring_handovers_total",
		Help: "Tasks moved to (gained) or away from (lost) this replica by changes of the ring's members.",
	}, []string{"direction"})
	ringOwnedTasksDesc = prometheus.NewDesc("asynctask_ring_owned_tasks",
		"Unfinished AsyncTasks this replica owns on the ring.", nil, nil)
	ringOwnedBackendsDesc = prometheus.NewDesc("asynctask_ring_owned_backends",
		"TaskBackends and ClusterTaskBackends this replica owns on the ring: it checks them and runs their submission queues.", nil, nil)
)

// ringOwnedCollector counts, at each scrape, what this replica owns in the cache.
type ringOwnedCollector struct {
	tasks *tasksByPhase
	ring  ownership
}

func (c *ringOwnedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ringOwnedTasksDesc
	ch <- ringOwnedBackendsDesc
}

func (c *ringOwnedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tasks, err := c.tasks.cachedTasks(ctx)
	if err != nil {
		return
	}
	uids, err := backendUIDs(ctx, c.tasks.cache)
	if err != nil {
		return
	}
	backends := 0
	for _, uid := range uids {
		if c.ring.owns(uid) {
			backends++
		}
	}
	owned := 0
	for _, t := range tasks {
		if !t.Status.Phase.Finished() && c.ring.owns(ringKey(t, func(k backendKey) types.UID { return uids[k] })) {
			owned++
		}
	}
	ch <- prometheus.MustNewConstMetric(ringOwnedTasksDesc, prometheus.GaugeValue, float64(owned))
	ch <- prometheus.MustNewConstMetric(ringOwnedBackendsDesc, prometheus.GaugeValue, float64(backends))
}

// backendUIDs returns the UID of every TaskBackend and ClusterTaskBackend in reader, by key: their ring keys.
func backendUIDs(ctx context.Context, reader client.Reader) (map[backendKey]types.UID, error) {
	namespaced, clustered := &v1alpha1.TaskBackendList{}, &v1alpha1.ClusterTaskBackendList{}
	if err := reader.List(ctx, namespaced); err != nil {
		return nil, err
	}
	if err := reader.List(ctx, clustered); err != nil {
		return nil, err
	}
	uids := make(map[backendKey]types.UID, len(namespaced.Items)+len(clustered.Items))
	for _, b := range namespaced.Items {
		uids[backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: b.Namespace, Name: b.Name}] = b.UID
	}
	for _, b := range clustered.Items {
		uids[backendKey{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: b.Name}] = b.UID
	}
	return uids, nil
}
