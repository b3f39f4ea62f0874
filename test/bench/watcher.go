package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// watcher counts the writes to every AsyncTask, as a watch on the API server sees them (one MODIFIED event per
// new resourceVersion), and notes when each task was first seen Running and Ready=True.
type watcher struct {
	start time.Time

	writes      []atomic.Int32
	totalWrites atomic.Int64
	mu          sync.Mutex
	running     []bool
	readyAt     []time.Duration // since start; 0 until Ready=True was seen
	nRunning    int
	gaps        int // watches that had to be restarted from a fresh list (events possibly lost)
	// finishedWrites counts the writes to the tasks created finished (-finished); finishedSeen how many of them
	// the first list held.
	finishedWrites  atomic.Int64
	finishedSeen    int
	nFinishedListed int // counted by list

	// uids are the tasks' UIDs, their keys on the ring; "" until the task was seen.
	uids []types.UID
}

func newWatcher(start time.Time, n int) *watcher {
	return &watcher{start: start, writes: make([]atomic.Int32, n), running: make([]bool, n), readyAt: make([]time.Duration, n),
		uids: make([]types.UID, n)}
}

func taskName(i int) string { return fmt.Sprintf("t-%05d", i) }

func taskIndexOf(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "t-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// run lists and watches until ctx ends, re-watching from the last resourceVersion when a watch closes.
func (w *watcher) run(ctx context.Context, c client.WithWatch, namespace string, ready chan<- struct{}) error {
	rv, err := w.list(ctx, c, namespace)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.finishedSeen = w.nFinishedListed
	w.mu.Unlock()
	close(ready)
	for ctx.Err() == nil {
		wi, err := c.Watch(ctx, &v1alpha1.AsyncTaskList{}, client.InNamespace(namespace),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range wi.ResultChan() {
			switch ev.Type {
			case watch.Modified, watch.Added:
				task, ok := ev.Object.(*v1alpha1.AsyncTask)
				if !ok {
					continue
				}
				rv = task.ResourceVersion
				w.observe(task, ev.Type == watch.Modified)
			case watch.Bookmark:
				if o, ok := ev.Object.(*v1alpha1.AsyncTask); ok {
					rv = o.ResourceVersion
				}
			case watch.Error:
				// Too old a resourceVersion, say: start over from a fresh list. Writes in between are lost.
				w.mu.Lock()
				w.gaps++
				w.mu.Unlock()
				if fresh, err := w.list(ctx, c, namespace); err == nil {
					rv = fresh
				}
			}
		}
		wi.Stop()
	}
	return nil
}

// list observes every task, in pages (100,000 tasks in one answer would be a large allocation of the bench's),
// and returns the list's resourceVersion to watch from.
func (w *watcher) list(ctx context.Context, c client.WithWatch, namespace string) (string, error) {
	opts := []client.ListOption{client.InNamespace(namespace), client.Limit(1000)}
	w.nFinishedListed = 0
	rv := ""
	for cont := ""; ; {
		page := &v1alpha1.AsyncTaskList{}
		if err := c.List(ctx, page, append(opts, client.Continue(cont))...); err != nil {
			return "", err
		}
		for i := range page.Items {
			w.observe(&page.Items[i], false)
		}
		if rv == "" {
			rv = page.ResourceVersion // a continued list is served at the first page's resourceVersion
		}
		if cont = page.Continue; cont == "" {
			return rv, nil
		}
	}
}

func (w *watcher) observe(task *v1alpha1.AsyncTask, write bool) {
	if strings.HasPrefix(task.Name, finishedIDPrefix) {
		if write {
			w.finishedWrites.Add(1)
		} else {
			w.nFinishedListed++ // only list reads call observe without a write, from the run goroutine
		}
		return
	}
	i, ok := taskIndexOf(task.Name)
	if !ok || i >= len(w.writes) {
		return
	}
	now := time.Since(w.start)
	if write {
		w.writes[i].Add(1)
		w.totalWrites.Add(1)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.uids[i] = task.UID
	if !w.running[i] && task.Status.Phase != "" && task.Status.Phase != v1alpha1.TaskPhasePending {
		w.running[i] = true
		w.nRunning++
	}
	if w.readyAt[i] == 0 && meta.IsStatusConditionTrue(task.Status.Conditions, v1alpha1.ConditionReady) {
		w.readyAt[i] = now
	}
}

// runningCount returns how many tasks have been seen Running.
func (w *watcher) runningCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nRunning
}

// uid returns task i's UID; "" before the task was seen.
func (w *watcher) uid(i int) types.UID {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.uids[i]
}

func (w *watcher) readyTime(i int) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.readyAt[i]
}
