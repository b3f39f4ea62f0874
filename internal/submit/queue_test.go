package submit

import (
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

func queuedTask(i int, op string) *v1alpha1.AsyncTask {
	t := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("t%03d", i), UID: types.UID(fmt.Sprint("uid-", i)),
		CreationTimestamp: metav1.NewTime(time.Unix(1_800_000_000+int64(i/10), 0))}}
	t.Spec.Submit = &v1alpha1.SubmitSpec{Operation: op}
	return t
}

// TestQueueNeverAdmitsOneTooMany: 100 tasks, maxRunning 5, 16 workers deciding at once on a cache that never
// shows the attempts recorded (the worst lag), only the tasks' end, tasks finishing two at a time: at most 5 run at once, all 100
// start, in creation order within what the workers race for.
func TestQueueNeverAdmitsOneTooMany(t *testing.T) {
	const n, limit = 100, 5
	q := NewQueue()
	key := QueueKey{Backend: "TaskBackend ns/b", Operation: "start"}
	cached := make([]*v1alpha1.AsyncTask, n)
	for i := range n {
		cached[i] = queuedTask(i, "start")
	}
	cached = append(cached, queuedTask(500, "other")) // another operation's task never counts

	var mu sync.Mutex
	running, most, started := map[types.UID]bool{}, 0, 0
	var order []int
	admit := func(i int) bool {
		ok, err := q.Admit(key, cached[i], limit, cached, func() error {
			mu.Lock()
			defer mu.Unlock()
			running[cached[i].UID] = true
			most = max(most, len(running))
			started++
			order = append(order, i)
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		return ok
	}
	done := map[int]bool{}
	for round := 0; started < n && round < 1000; round++ {
		var wg sync.WaitGroup
		admitted := make([]bool, n)
		for i := range n {
			if done[i] {
				continue
			}
			wg.Go(func() { admitted[i] = admit(i) })
		}
		wg.Wait()
		for i, ok := range admitted {
			done[i] = done[i] || ok
		}
		// Two tasks finish in the same second.
		finished := 0
		mu.Lock()
		for uid := range running {
			if finished == 2 {
				break
			}
			delete(running, uid)
			finished++
			for _, c := range cached {
				if c.UID == uid {
					c.Status.Phase = v1alpha1.TaskPhaseSucceeded // the cache sees it finish
				}
			}
			mu.Unlock()
			q.Forget(uid, types.NamespacedName{})
			mu.Lock()
		}
		mu.Unlock()
	}
	if started != n || most != limit {
		t.Fatalf("started %d of %d, at most %d running at once, want %d", started, n, most, limit)
	}
	// The first five admitted are the five oldest.
	for _, i := range order[:limit] {
		if i >= 10 {
			t.Errorf("task %d started among the first %d, before older ones: %v", i, limit, order[:limit])
		}
	}
}

// TestQueueCountsStartedTasksAfterARestart: a new process counts the tasks whose records show an attempt.
func TestQueueCountsStartedTasksAfterARestart(t *testing.T) {
	key := QueueKey{Backend: "b", Operation: "start"}
	var cached []*v1alpha1.AsyncTask
	for i := range 6 {
		task := queuedTask(i, "start")
		if i < 5 {
			task.Status.Submission = &v1alpha1.SubmissionStatus{Attempt: 1}
		}
		cached = append(cached, task)
	}
	ok, err := NewQueue().Admit(key, cached[5], 5, cached, func() error { return nil })
	if err != nil || ok {
		t.Fatalf("admitted a sixth task after a restart: %v %v", ok, err)
	}
	cached[0].Status.Phase = v1alpha1.TaskPhaseSucceeded
	if ok, _ := NewQueue().Admit(key, cached[5], 5, cached, func() error { return nil }); !ok {
		t.Fatal("a finished task still holds its place")
	}
}

// TestQueueAdmitsNothingWhenTheRecordFails: a refused record takes no place.
func TestQueueAdmitsNothingWhenTheRecordFails(t *testing.T) {
	q, key := NewQueue(), QueueKey{Backend: "b", Operation: "start"}
	a, b := queuedTask(0, "start"), queuedTask(1, "start")
	if ok, err := q.Admit(key, a, 1, []*v1alpha1.AsyncTask{a, b}, func() error { return fmt.Errorf("conflict") }); ok || err == nil {
		t.Fatal("admitted on a failed record")
	}
	if ok, _ := q.Admit(key, b, 1, []*v1alpha1.AsyncTask{a, b}, func() error { return nil }); ok {
		t.Fatal("b went ahead of the older a")
	}
	if ok, _ := q.Admit(key, a, 1, []*v1alpha1.AsyncTask{a, b}, func() error { return nil }); !ok {
		t.Fatal("a was not admitted")
	}
}
