package backend

import (
	"context"
	"sync/atomic"
)

// LoginCounter counts the logins of a Session (pass its Count to NewSession as onLogin), so that a readiness
// check can tell a session made for it from one a poll already held.
type LoginCounter struct {
	n       atomic.Uint64
	onLogin func()
}

// NewLoginCounter returns a LoginCounter whose Count also calls onLogin (Config.OnLogin; nil for none).
func NewLoginCounter(onLogin func()) *LoginCounter { return &LoginCounter{onLogin: onLogin} }

// Count is the onLogin of the counted Session: one more login, and Config.OnLogin for the metrics.
func (c *LoginCounter) Count() {
	c.n.Add(1)
	if c.onLogin != nil {
		c.onLogin()
	}
}

// LogInAnew makes s log in now, so that a readiness check reports what the vendor says of the credentials
// today. A session a poll already holds is dropped and replaced; the new one then serves the polls, so no
// login is wasted. logins must be the counter s was built with.
func LogInAnew[T any](ctx context.Context, s *Session[T], logins *LoginCounter) error {
	before := logins.n.Load()
	_, generation, err := s.Get(ctx)
	if err != nil || logins.n.Load() != before {
		return err
	}
	s.Invalidate(generation)
	_, _, err = s.Get(ctx)
	return err
}
