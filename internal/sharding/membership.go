package sharding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// RingLabel labels each member's Lease with the name of its ring; the members of a ring watch the Leases
// carrying it.
const RingLabel = "tasks.asynctask.dev/ring"

// Config describes one member of a ring.
type Config struct {
	Client kubernetes.Interface
	// Namespace holds the ring's Leases.
	Namespace string
	// Ring names the ring (RingLabel's value): the replicas of one Deployment, or of one shard, share it.
	Ring string
	// Identity names this member (its pod's name); its Lease is Ring + "-" + Identity.
	Identity string
	// The timings of client-go's leader election, applied to the member's own Lease: LeaseDuration is how long
	// a Lease counts after its last renewal was seen; the holder renews every RetryPeriod and stops working when
	// it could not renew for RenewDeadline (shorter than LeaseDuration, so that it stops before the others take
	// its keys).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       logr.Logger
	// Clock is the real clock when nil.
	Clock clock.WithTicker
}

// Membership is one replica's view of its ring: it holds the replica's Lease, watches the Leases of the
// ring, and keeps the Ring of the live members. It owns nothing until it holds its own Lease and has listed
// the others, and nothing once it could not renew its Lease.
type Membership struct {
	cfg Config

	// updating serializes ring updates and the subscribers' calls, which run outside mu so that they may call
	// Owns.
	updating sync.Mutex
	mu       sync.Mutex
	// leases is what was seen of each Lease of the ring, by name.
	leases  map[string]seenLease
	synced  bool
	holding bool
	ring    *Ring
	// changedAt is when ring last changed; joinedAt when it last went from empty (this member holding no Lease,
	// or not having listed the others) to not empty.
	changedAt, joinedAt time.Time
	subscribers         []func(before, after *Ring)
	// recheck wakes the loop that expires Leases whose renewals stopped.
	recheck chan struct{}
	// rebuilds counts the ring's rebuilds, so that a test can tell the expiry loop does not spin.
	rebuilds atomic.Int64
}

// seenLease is what a member knows of another's Lease: when it last saw it renewed, by its own clock (as
// client-go's leader election does, so that clock skew between nodes does not matter).
type seenLease struct {
	holder         string
	renewTime      time.Time
	duration       time.Duration
	seenRenewingAt time.Time
}

// NewMembership returns the membership of cfg; Run makes it work.
func NewMembership(cfg Config) (*Membership, error) {
	if cfg.Namespace == "" || cfg.Ring == "" || cfg.Identity == "" {
		return nil, errors.New("a ring member needs a namespace, a ring name and an identity")
	}
	if cfg.RenewDeadline >= cfg.LeaseDuration || cfg.RetryPeriod <= 0 || cfg.RetryPeriod >= cfg.RenewDeadline {
		return nil, fmt.Errorf("lease timings must satisfy 0 < retry period (%s) < renew deadline (%s) < lease duration (%s)",
			cfg.RetryPeriod, cfg.RenewDeadline, cfg.LeaseDuration)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Membership{cfg: cfg, leases: map[string]seenLease{}, ring: NewRing(nil), recheck: make(chan struct{}, 1)}, nil
}

// Identity is this member's name on the ring.
func (m *Membership) Identity() string { return m.cfg.Identity }

// LeaseName is the name of this member's Lease.
func (m *Membership) LeaseName() string { return m.cfg.Ring + "-" + m.cfg.Identity }

// Subscribe calls fn after every change of the ring, with the ring before and after, in order; calls do not
// overlap, and the ring does not change again until fn returns. Subscribe before Run.
func (m *Membership) Subscribe(fn func(before, after *Ring)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subscribers = append(m.subscribers, fn)
}

// Ring returns the current ring: empty until this member holds its Lease and has seen the others.
func (m *Membership) Ring() *Ring {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ring
}

// Owns reports whether key belongs to this member now.
func (m *Membership) Owns(key string) bool { return m.Ring().Owner(key) == m.cfg.Identity }

// SettledAt is the earliest time this member acts on a key it gained by the ring's last change: one
// RetryPeriod after the change, so that the member that lost the key, which learns of the change through its
// own watch at about the same time, has stopped first.
func (m *Membership) SettledAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changedAt.Add(m.cfg.RetryPeriod)
}

// JoinedSettledAt is SettledAt of the change that made this member own keys at all (it took its Lease): the
// earliest time it acts on keys it cannot tell whether it gained from another member.
func (m *Membership) JoinedSettledAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.joinedAt.Add(m.cfg.RetryPeriod)
}

// Run holds this member's Lease and follows the ring until ctx ends; it then releases the Lease (the others
// take over at once) and returns. Stop the work that depends on Owns before ending ctx.
func (m *Membership) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(m.cfg.Client, 0, informers.WithNamespace(m.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.SelectorFromSet(labels.Set{RingLabel: m.cfg.Ring}).String()
		}))
	informer := factory.Coordination().V1().Leases().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.seen(obj) },
		UpdateFunc: func(_, obj any) { m.seen(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if l, ok := obj.(*coordinationv1.Lease); ok {
				m.mu.Lock()
				delete(m.leases, l.Name)
				m.mu.Unlock()
				m.update()
			}
		},
	}); err != nil {
		return err
	}
	watchCtx, stopWatching := context.WithCancel(context.Background())
	defer stopWatching()
	factory.Start(watchCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return ctx.Err()
	}
	m.mu.Lock()
	m.synced = true
	m.mu.Unlock()
	m.update()

	var wg sync.WaitGroup
	wg.Go(func() { m.expireLeases(ctx, informer.GetStore()) })
	m.holdLease(ctx)
	wg.Wait()
	return nil
}

// holdLease takes and renews this member's Lease with client-go's leader election, each member being the
// only candidate for its own Lease; a lost Lease is taken again. On return the Lease is released.
func (m *Membership) holdLease(ctx context.Context) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: m.cfg.Namespace, Name: m.LeaseName()},
		Client:     m.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: m.cfg.Identity},
		Labels:     map[string]string{RingLabel: m.cfg.Ring},
	}
	for ctx.Err() == nil {
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: m.LeaseName(), ReleaseOnCancel: true,
			LeaseDuration: m.cfg.LeaseDuration, RenewDeadline: m.cfg.RenewDeadline, RetryPeriod: m.cfg.RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { m.setHolding(true) },
				OnStoppedLeading: func() { m.setHolding(false) },
			},
		})
		if err != nil { // only for invalid timings, which NewMembership refuses
			m.cfg.Log.Error(err, "Cannot hold the ring member's Lease")
			return
		}
		elector.Run(ctx)
		if ctx.Err() == nil {
			m.cfg.Log.Info("Lost the ring member's Lease: owning nothing until it is held again", "lease", m.LeaseName())
		}
	}
}

func (m *Membership) setHolding(holding bool) {
	m.mu.Lock()
	m.holding = holding
	m.mu.Unlock()
	m.update()
}

// seen records a Lease as the watch delivered it.
func (m *Membership) seen(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return
	}
	now := m.cfg.Clock.Now()
	next := seenLease{holder: ptr.Deref(l.Spec.HolderIdentity, ""), seenRenewingAt: now,
		duration: time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second}
	if l.Spec.RenewTime != nil {
		next.renewTime = l.Spec.RenewTime.Time
	}
	m.mu.Lock()
	before, known := m.leases[l.Name]
	switch {
	case known && before.holder == next.holder && before.renewTime.Equal(next.renewTime):
		next.seenRenewingAt = before.seenRenewingAt // not renewed: another field changed
	case !known && !next.renewTime.IsZero() && now.Sub(next.renewTime) > next.duration:
		// First seen long after its last renewal (a crashed member's Lease, found by a replica that starts
		// later): gone already, not for one more duration. A clock skewed by more than the duration could
		// misjudge a live Lease here, but only until its next renewal.
		next.seenRenewingAt = next.renewTime
	}
	m.leases[l.Name] = next
	m.mu.Unlock()
	m.update()
}

// live reports whether a Lease's holder counts as a member at now. The caller holds mu.
func (l seenLease) live(now time.Time) bool {
	return l.holder != "" && now.Before(l.seenRenewingAt.Add(l.duration))
}

// update rebuilds the ring from what is known, tells the subscribers when its members changed, and has the
// expiry timer set for the Leases as they are now.
func (m *Membership) update() {
	m.rebuild()
	m.wakeExpiry()
}

// rebuild is update without waking the expiry loop (which calls it).
func (m *Membership) rebuild() {
	m.rebuilds.Add(1)
	m.updating.Lock()
	defer m.updating.Unlock()
	m.mu.Lock()
	now := m.cfg.Clock.Now()
	var members []string
	if m.synced && m.holding {
		members = append(members, m.cfg.Identity)
		for _, l := range m.leases {
			if l.live(now) && l.holder != m.cfg.Identity { // our own Lease counts only while we hold it
				members = append(members, l.holder)
			}
		}
	}
	slices.Sort(members)
	members = slices.Compact(members)
	before := m.ring
	if slices.Equal(before.members, members) {
		m.mu.Unlock()
		return
	}
	after := NewRing(members)
	m.ring, m.changedAt = after, now
	if before.Len() == 0 {
		m.joinedAt = now
	}
	subscribers := m.subscribers
	m.mu.Unlock()
	m.cfg.Log.Info("Ring changed", "members", after.Members())
	for _, fn := range subscribers {
		fn(before, after)
	}
}

func (m *Membership) wakeExpiry() {
	select {
	case m.recheck <- struct{}{}:
	default:
	}
}

// expireLeases drops members whose Leases were not renewed within their duration (the process died or lost
// the API server), at the moment they expire, and deletes Leases of the ring that have been dead for a long
// time (pods that are gone) so that they do not pile up.
func (m *Membership) expireLeases(ctx context.Context, store cache.Store) {
	timer := m.cfg.Clock.NewTimer(m.cfg.LeaseDuration)
	defer timer.Stop()
	lastCleanup := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-m.recheck:
		}
		m.rebuild()
		now := m.cfg.Clock.Now()
		next := m.cfg.LeaseDuration
		m.mu.Lock()
		for _, l := range m.leases {
			if l.live(now) {
				next = min(next, l.seenRenewingAt.Add(l.duration).Sub(now))
			}
		}
		m.mu.Unlock()
		if !timer.Stop() {
			select {
			case <-timer.C():
			default:
			}
		}
		timer.Reset(max(next, time.Millisecond))
		if now.Sub(lastCleanup) >= m.cfg.LeaseDuration {
			lastCleanup = now
			m.deleteDeadLeases(ctx, store, now)
		}
	}
}

// deadLeaseAge is how long a Lease of the ring must have been expired (by its own renewTime, with lots of room
// for clock skew) before a member deletes it.
const deadLeaseAge = time.Hour

func (m *Membership) deleteDeadLeases(ctx context.Context, store cache.Store, now time.Time) {
	for _, obj := range store.List() {
		l, ok := obj.(*coordinationv1.Lease)
		if !ok || l.Name == m.LeaseName() || l.Spec.RenewTime == nil {
			continue
		}
		expired := l.Spec.RenewTime.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second)
		if now.Sub(expired) < deadLeaseAge {
			continue
		}
		err := m.cfg.Client.CoordinationV1().Leases(l.Namespace).Delete(ctx, l.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &l.UID, ResourceVersion: &l.ResourceVersion}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			m.cfg.Log.Info("Cannot delete a dead ring member's Lease", "lease", l.Name, "error", err.Error())
		}
	}
}

// RunBeside runs work (the manager) while m holds its Lease, and releases the Lease only once work returned:
// when ctx ends, the work stops polling first and the others take its keys after. With m nil, it runs work
// alone; if the membership fails, the work is stopped.
func RunBeside(ctx context.Context, m *Membership, work func(context.Context) error) error {
	if m == nil {
		return work(ctx)
	}
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	ringCtx, stopRing := context.WithCancel(context.WithoutCancel(ctx))
	ringErr := make(chan error, 1)
	go func() {
		err := m.Run(ringCtx)
		if err != nil {
			stopWork()
		}
		ringErr <- err
	}()
	err := work(workCtx)
	stopRing()
	return errors.Join(err, <-ringErr)
}
