package controller

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestWakeBringsABackedOffTaskToItsRegularTimeNeverEarlier: a backend's recovery moves a task that backed off
// to when it would have been due without backoff, not to now; a task not backed off is left as it is.
func TestWakeBringsABackedOffTaskToItsRegularTimeNeverEarlier(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := newPollSchedule()

	s.set("backed-off", now.Add(80*time.Second), now.Add(10*time.Second))
	s.wake("backed-off")
	g.Expect(s.wait("backed-off", now)).To(Equal(10*time.Second), "brought forward to its regular time")
	s.wake("backed-off")
	g.Expect(s.wait("backed-off", now)).To(Equal(10*time.Second), "waking again changes nothing")

	s.set("on-schedule", now.Add(10*time.Second), now.Add(10*time.Second))
	s.wake("on-schedule")
	g.Expect(s.wait("on-schedule", now)).To(Equal(10*time.Second), "never earlier than its own interval")

	s.set("probe", now.Add(time.Second), now.Add(10*time.Second))
	s.wake("probe")
	g.Expect(s.wait("probe", now)).To(Equal(time.Second), "a task due before its regular time keeps its time")

	s.wake("unknown")
	g.Expect(s.wait("unknown", now)).To(BeZero(), "a task never polled stays due")
	s.forget("backed-off")
	g.Expect(s.wait("backed-off", now)).To(BeZero(), "forget (a changed backend or Secret) makes it due at once")
}
