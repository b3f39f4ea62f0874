package backend

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestRefusedLoginIsNotTriedAgainBeforeItsBackoff: a login the vendor refuses is answered from memory, with
// no new attempt, for the poll interval, then twice as long after each further refusal up to five minutes;
// a login that works again clears the memory.
func TestRefusedLoginIsNotTriedAgainBeforeItsBackoff(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	attempts, refuse := 0, true
	refusal := Errorf(KindAuthentication, "vendor refused the login: wrong password")
	s := NewSession(func(context.Context) (string, time.Time, error) {
		attempts++
		if refuse {
			return "", time.Time{}, refusal
		}
		return "token", time.Time{}, nil
	}, 0, nil).RetryRefusedLoginsAfter(10 * time.Second)
	s.now = func() time.Time { return now }
	ctx := context.Background()

	wantWaits := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, wait := range wantWaits {
		_, _, err := s.Get(ctx)
		g.Expect(err).To(MatchError(refusal))
		g.Expect(attempts).To(Equal(i+1), "one attempt per backoff step")
		for range 5 {
			_, _, err = s.Get(ctx)
			g.Expect(err).To(MatchError(refusal), "the refusal is answered from memory")
		}
		now = now.Add(wait - time.Millisecond)
		_, _, _ = s.Get(ctx)
		g.Expect(attempts).To(Equal(i+1), "not tried again before %s", wait)
		now = now.Add(time.Millisecond)
	}

	refuse = false
	token, _, err := s.Get(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(token).To(Equal("token"))
	s.Invalidate(1)
	refuse = true
	_, _, _ = s.Get(ctx)
	attemptsAfterReset := attempts
	now = now.Add(10 * time.Second)
	_, _, _ = s.Get(ctx)
	g.Expect(attempts).To(Equal(attemptsAfterReset+1), "after a good login the backoff starts again from the interval")
}

// TestConcurrentPollsAfterARefusedLoginCostOneAttempt: polls that all find no session at once cost one login
// attempt between them when the vendor refuses it.
func TestConcurrentPollsAfterARefusedLoginCostOneAttempt(t *testing.T) {
	var mu sync.Mutex
	attempts := 0
	s := NewSession(func(context.Context) (string, time.Time, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		return "", time.Time{}, Errorf(KindAuthentication, "refused")
	}, 0, nil).RetryRefusedLoginsAfter(time.Minute)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { _, _, _ = s.Get(context.Background()) })
	}
	wg.Wait()
	NewWithT(t).Expect(attempts).To(Equal(1))
}

// TestUnreachableLoginIsTriedAgainAtOnce: only a refusal of the credentials is remembered; a vendor that did
// not answer is asked again at the next poll.
func TestUnreachableLoginIsTriedAgainAtOnce(t *testing.T) {
	attempts := 0
	s := NewSession(func(context.Context) (string, time.Time, error) {
		attempts++
		return "", time.Time{}, errors.Join(Errorf(KindTransient, "cannot reach the vendor"))
	}, 0, nil).RetryRefusedLoginsAfter(time.Minute)
	for range 3 {
		_, _, _ = s.Get(context.Background())
	}
	NewWithT(t).Expect(attempts).To(Equal(3))
}

// TestRefusedLoginsAreReportedOncePerAttempt: under WithLoginRefused, each login the vendor refuses is
// reported once; refusals answered from memory and failures that are not refusals are not.
func TestRefusedLoginsAreReportedOncePerAttempt(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	failure := Errorf(KindAuthentication, "vendor refused the login")
	s := NewSession(func(context.Context) (string, time.Time, error) { return "", time.Time{}, failure }, 0, nil).
		RetryRefusedLoginsAfter(10 * time.Second)
	s.now = func() time.Time { return now }
	refused := 0
	ctx := WithLoginRefused(context.Background(), func() { refused++ })

	for range 3 {
		_, _, _ = s.Get(ctx)
	}
	g.Expect(refused).To(Equal(1), "the second and third answers come from memory")
	now = now.Add(10 * time.Second)
	_, _, _ = s.Get(ctx)
	g.Expect(refused).To(Equal(2))

	failure = Errorf(KindTransient, "vendor unreachable")
	now = now.Add(time.Hour)
	_, _, _ = s.Get(ctx)
	g.Expect(refused).To(Equal(2), "an unreachable vendor refused nothing")
}
