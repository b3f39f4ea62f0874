package controller

import (
	"context"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// backendHealth tracks whether a backend's polls fail. While it is down, its tasks back off, except one task
// per poll interval that probes it; when a poll succeeds again, every task of the backend is woken, so all
// recover within about one interval of the vendor's return instead of waiting out their backoff.
type backendHealth struct {
	mu        sync.Mutex
	failing   bool
	nextProbe time.Time
}

// failed records a failed poll and reports whether the caller is this interval's probe.
func (h *backendHealth) failed(now time.Time, interval time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing = true
	if now.Before(h.nextProbe) {
		return false
	}
	h.nextProbe = now.Add(interval)
	return true
}

// isFailing reports whether the last poll of the backend failed.
func (h *backendHealth) isFailing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failing
}

// succeeded records a good poll and reports whether the backend was failing until now.
func (h *backendHealth) succeeded() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	recovered := h.failing
	h.failing, h.nextProbe = false, time.Time{}
	return recovered
}

// wakeTasks, called when a backend answers again after failing, brings every unfinished task of the backend
// that backed off forward to its regular time (never earlier, so that flapping answers cannot make tasks poll
// more often than their interval) and queues it, without blocking the caller.
func (r *AsyncTaskReconciler) wakeTasks(ctx context.Context, key backendKey) {
	requests := r.tasksOf.tasksOf(ctx, key, r.schedule.wake)
	go func() {
		for _, req := range requests {
			task := &v1alpha1.AsyncTask{}
			task.Namespace, task.Name = req.Namespace, req.Name
			select {
			case r.wake <- event.GenericEvent{Object: task}:
			case <-ctx.Done():
				return
			}
		}
	}()
}
