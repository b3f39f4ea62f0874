package submit

import (
	"cmp"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// QueueKey names one queue: an operation of one backend.
type QueueKey struct {
	// Backend identifies the backend (its kind, namespace and name).
	Backend   string
	Operation string
}

// Queue enforces the operations' maxRunning: at most that many tasks of an operation on a backend started and
// not finished at once, the rest admitted in creation order. A task is started from the moment its first
// attempt is recorded. Decisions for one queue are taken one at a time, the attempt's record written under
// the lock, and tasks this process started count until it sees them finish or go, even before its cache shows
// their records: so two tasks never take the last place together, and a restarted process counts from the
// records alone.
type Queue struct {
	mu     sync.Mutex
	queues map[QueueKey]*queueState
}

type queueState struct {
	mu sync.Mutex
	// started holds the tasks this process started that have not finished or gone, with their names.
	started map[types.UID]types.NamespacedName
}

// NewQueue returns an empty Queue.
func NewQueue() *Queue { return &Queue{queues: map[QueueKey]*queueState{}} }

func (q *Queue) state(key QueueKey) *queueState {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.queues[key]
	if !ok {
		s = &queueState{started: map[types.UID]types.NamespacedName{}}
		q.queues[key] = s
	}
	return s
}

// Admit decides whether task may start now under limit, given the unfinished tasks of the backend (from the
// cache; tasks of other operations are ignored), and when it may, runs record (the write of its first
// attempt) before any other decision of the queue. It reports whether record ran and succeeded.
func (q *Queue) Admit(key QueueKey, task *v1alpha1.AsyncTask, limit int32, tasks []*v1alpha1.AsyncTask, record func() error) (bool, error) {
	s := q.state(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	unfinished := make(map[types.UID]struct{}, len(tasks))
	for _, t := range tasks {
		unfinished[t.UID] = struct{}{}
	}
	running := map[types.UID]struct{}{}
	for uid := range s.started {
		if _, ok := unfinished[uid]; !ok {
			// Finished or gone, as the cache shows: with several replicas, another one may have seen it finish.
			delete(s.started, uid)
			continue
		}
		running[uid] = struct{}{}
	}
	var waiting []*v1alpha1.AsyncTask
	for _, t := range tasks {
		if t.Spec.Submit == nil || t.Spec.Submit.Operation != key.Operation || t.Status.Phase.Finished() {
			continue
		}
		switch {
		case Started(t):
			running[t.UID] = struct{}{}
		case t.UID != task.UID && t.DeletionTimestamp.IsZero():
			if _, ok := s.started[t.UID]; !ok {
				waiting = append(waiting, t)
			}
		}
	}
	delete(running, task.UID)
	ahead := 0
	for _, t := range waiting {
		if before(t, task) {
			ahead++
		}
	}
	if int32(len(running)+ahead) >= limit { //nolint:gosec // G115: counts of tasks
		return false, nil
	}
	if err := record(); err != nil {
		return false, err
	}
	s.started[task.UID] = types.NamespacedName{Namespace: task.Namespace, Name: task.Name}
	return true, nil
}

// before orders a queue: by creation, then by name for tasks created in the same second.
func before(a, b *v1alpha1.AsyncTask) bool {
	return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)) < 0
}

// Forget drops a task that finished or was deleted from every queue, freeing its place, and returns the
// queues it was in (their waiting tasks may start now). A deleted task is named by its name alone (uid "").
func (q *Queue) Forget(uid types.UID, name types.NamespacedName) []QueueKey {
	q.mu.Lock()
	defer q.mu.Unlock()
	var freed []QueueKey
	for key, s := range q.queues {
		s.mu.Lock()
		for started, startedName := range s.started {
			if started == uid || uid == "" && startedName == name {
				delete(s.started, started)
				freed = append(freed, key)
			}
		}
		s.mu.Unlock()
	}
	slices.SortFunc(freed, func(a, b QueueKey) int { return cmp.Compare(a.Backend+"/"+a.Operation, b.Backend+"/"+b.Operation) })
	return freed
}

// Waiting returns the tasks among tasks that wait in the queue key, in queue order.
func Waiting(key QueueKey, tasks []*v1alpha1.AsyncTask) []*v1alpha1.AsyncTask {
	var out []*v1alpha1.AsyncTask
	for _, t := range tasks {
		if t.Spec.Submit != nil && t.Spec.Submit.Operation == key.Operation && !Started(t) && !t.Status.Phase.Finished() {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.AsyncTask) int {
		if before(a, b) {
			return -1
		}
		return 1
	})
	return out
}
