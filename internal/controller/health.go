package controller

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// backendHealth is a failing backend's entry in the scheduler. While a backend is down, its tasks back off,
// except one task per poll interval that probes it; when a poll succeeds again, every task of the backend is
// woken, so all recover within about one interval of the vendor's return instead of waiting out their backoff.
type backendHealth struct {
	// connection is the connection whose polls failed; a rebuilt connection (a changed backend or Secret)
	// starts healthy.
	connection string
	nextProbe  time.Time
}

// failed records a failed poll through connection and reports whether the caller is this interval's probe.
// The caller holds s.mu.
func (s *scheduler) failed(key backendKey, connection string, now time.Time, interval time.Duration) bool {
	h, ok := s.failing[key]
	if !ok || h.connection != connection {
		h = backendHealth{connection: connection}
	}
	probe := !now.Before(h.nextProbe)
	if probe {
		h.nextProbe = now.Add(interval)
	}
	s.failing[key] = h
	return probe
}

// isFailing reports whether the last poll through connection failed. The caller holds s.mu.
func (s *scheduler) isFailing(key backendKey, connection string) bool {
	h, ok := s.failing[key]
	return ok && h.connection == connection
}

// succeeded records a good poll through connection and reports whether the backend was failing until now.
// The caller holds s.mu.
func (s *scheduler) succeeded(key backendKey, connection string) bool {
	recovered := s.isFailing(key, connection)
	if h, ok := s.failing[key]; ok && (recovered || h.connection != connection) {
		delete(s.failing, key)
	}
	return recovered
}

// wakeTasks, called when a backend answers again after failing, brings every unfinished task of the backend
// that backed off forward to its regular time (never earlier, so that flapping answers cannot make tasks poll
// more often than their interval) and queues those, without blocking the caller. A task that did not back off
// is not queued: a task created since, whose first status write the cache may not show yet, would read as a
// changed spec and be polled twice.
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
