package controller

import (
	"math/rand/v2"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// maxBackoff caps the wait between polls of a task whose backend keeps failing.
const maxBackoff = 5 * time.Minute

func durationOr(d *metav1.Duration, fallback time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return fallback
	}
	return d.Duration
}

// withJitter spreads polls of many tasks with one interval over a tenth of it, so tasks created together do
// not poll together for ever.
func withJitter(d time.Duration) time.Duration {
	// Centred (±5%), so that on average a task is polled exactly once per interval.
	return d - d/20 + rand.N(d/10+1)
}

// backoff is the wait after the n-th error in a row: the poll interval doubled per error, capped at
// maxBackoff, and never shorter than the vendor's Retry-After.
func backoff(interval time.Duration, consecutiveErrors int32, retryAfter time.Duration) time.Duration {
	wait := interval
	for i := int32(1); i < consecutiveErrors && wait < maxBackoff; i++ {
		wait *= 2
	}
	return max(min(withJitter(wait), maxBackoff), min(retryAfter, maxBackoff))
}

// pollSchedule remembers when each task is next due, so that a reconcile that arrives early (a repeated
// timer, a watch event) does not poll the vendor again before its time; when it would be due without backoff
// (its regular time), so that a backend's recovery wakes it no earlier than its own interval; and which tasks
// this process saw finish, so that a reconcile from a cache that has not caught up with that status write
// never polls again.
type pollSchedule struct {
	mu       sync.Mutex
	due      map[types.UID]time.Time
	regular  map[types.UID]time.Time
	finished map[types.NamespacedName]types.UID
}

func newPollSchedule() *pollSchedule {
	return &pollSchedule{due: map[types.UID]time.Time{}, regular: map[types.UID]time.Time{}, finished: map[types.NamespacedName]types.UID{}}
}

// wait returns how long until the task is due; 0 when it is due or unknown.
func (s *pollSchedule) wait(uid types.UID, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.due[uid].Sub(now), 0)
}

// set records when the task is due next, and when it would be without backoff.
func (s *pollSchedule) set(uid types.UID, at, regular time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.due[uid] = at
	if at.Before(regular) {
		regular = at
	}
	s.regular[uid] = regular
}

// wake brings a backed-off task forward to its regular time (its backend answers again), never earlier.
func (s *pollSchedule) wake(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if regular, ok := s.regular[uid]; ok && regular.Before(s.due[uid]) {
		s.due[uid] = regular
	}
}

// forget makes a task due at once (its backend or Secret changed).
func (s *pollSchedule) forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.due, uid)
	delete(s.regular, uid)
}

// finish records that the task finished: it is never due again.
func (s *pollSchedule) finish(key types.NamespacedName, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.due, uid)
	delete(s.regular, uid)
	s.finished[key] = uid
}

// isFinished reports whether this process saw the task finish.
func (s *pollSchedule) isFinished(key types.NamespacedName, uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finished[key] == uid
}

// drop forgets a task that is gone, or whose finish the cache now shows.
func (s *pollSchedule) drop(key types.NamespacedName, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.due, uid)
	delete(s.regular, uid)
	if s.finished[key] == uid || uid == "" {
		delete(s.finished, key)
	}
}
