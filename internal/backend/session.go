package backend

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// LoginFunc logs in to a vendor and returns the session credential (a token, a cookie, a session ID) and when
// it expires; a zero expiry means the vendor did not say.
type LoginFunc[T any] func(ctx context.Context) (T, time.Time, error)

// Session holds one vendor login shared by every task of a backend. Logins are serialised, so that any number
// of polls that find the session expired at the same moment cause exactly one new login.
type Session[T any] struct {
	login LoginFunc[T]
	// refreshBefore renews a session this long before its stated expiry.
	refreshBefore time.Duration
	now           func() time.Time
	// onLogin, when set, is called after every successful login (for metrics).
	onLogin func()
	// fixed marks a credential used as it is: there is nothing to log in again with.
	fixed bool

	// refusalBackoff, when set, is the first wait after a refused login; see RetryRefusedLoginsAfter.
	refusalBackoff time.Duration

	mu         sync.Mutex
	value      T
	valid      bool
	expiry     time.Time
	generation uint64
	// refused is the vendor's last refusal of a login, answered again without logging in until refusedUntil.
	refused      error
	refusedUntil time.Time
	refusedWait  time.Duration
}

// MaxLoginBackoff caps the wait before a refused login is tried again.
const MaxLoginBackoff = 5 * time.Minute

// RetryRefusedLoginsAfter makes the session remember a login the vendor refused (an Authentication error, such
// as a wrong password) and answer every poll with that refusal, without logging in, for first, then twice as
// long after each further refusal, up to MaxLoginBackoff. Vendor accounts lock after a few failed logins, so
// one typo in a shared Secret must not cost a login attempt per poll. A changed Secret builds a new Session,
// which tries at once.
func (s *Session[T]) RetryRefusedLoginsAfter(first time.Duration) *Session[T] {
	s.refusalBackoff = first
	return s
}

// NewSession returns a Session that logs in with login, renewing refreshBefore ahead of a stated expiry, and
// calls onLogin (if not nil) after each login: pass Config.OnLogin for a real login, nil for a fixed credential.
func NewSession[T any](login LoginFunc[T], refreshBefore time.Duration, onLogin func()) *Session[T] {
	return &Session[T]{login: login, refreshBefore: refreshBefore, now: time.Now, onLogin: onLogin}
}

// NewFixedSession returns a Session holding a credential from the Secret used as it is (a token, a session
// ID). An answer saying it expired is returned at once: sending the same credential again cannot help.
func NewFixedSession[T any](value T) *Session[T] {
	s := NewSession(fixedCredential(value), 0, nil)
	s.fixed = true
	return s
}

// Get returns the current session, logging in first when there is none or it is about to expire. The
// generation identifies this session for Invalidate.
func (s *Session[T]) Get(ctx context.Context) (T, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.valid && (s.expiry.IsZero() || s.now().Add(s.refreshBefore).Before(s.expiry)) {
		return s.value, s.generation, nil
	}
	var zero T
	if s.refused != nil && s.now().Before(s.refusedUntil) {
		return zero, s.generation, s.refused
	}
	value, expiry, err := s.login(ctx)
	if err != nil {
		if KindOf(err) == KindAuthentication {
			if refused, ok := ctx.Value(loginRefusedKey{}).(func()); ok {
				refused()
			}
		}
		s.rememberRefusal(err)
		return zero, s.generation, err
	}
	s.refused, s.refusedWait = nil, 0
	s.value, s.expiry, s.valid = value, expiry, true
	s.generation++
	if s.onLogin != nil {
		s.onLogin()
	}
	return s.value, s.generation, nil
}

type loginRefusedKey struct{}

// WithLoginRefused returns a context under which every Session calls refused when the vendor refuses a login
// (an Authentication error from the LoginFunc; a refusal answered again from memory is no new login). A
// context, as net/http/httptrace hooks are, so that the controller counts refusals per backend without each
// vendor package passing one more callback to its Session.
func WithLoginRefused(ctx context.Context, refused func()) context.Context {
	return context.WithValue(ctx, loginRefusedKey{}, refused)
}

// rememberRefusal records a refused login, doubling the wait before the next attempt.
func (s *Session[T]) rememberRefusal(err error) {
	if s.refusalBackoff <= 0 || KindOf(err) != KindAuthentication {
		return // not a refusal of the credentials (the vendor is down, say): the next poll tries again
	}
	if s.refusedWait == 0 {
		s.refusedWait = s.refusalBackoff
	} else {
		s.refusedWait = min(2*s.refusedWait, MaxLoginBackoff)
	}
	s.refused, s.refusedUntil = err, s.now().Add(min(s.refusedWait, MaxLoginBackoff))
}

// Invalidate drops the session of the given generation. A caller holding an older generation changes
// nothing: another poll has already logged in again.
func (s *Session[T]) Invalidate(generation uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.generation == generation {
		s.valid = false
	}
}

// Do sends a request with the session, and when the answer says the session is no longer valid (expired),
// logs in again once and resends. A second refusal is returned as it is, for the caller to classify.
func (s *Session[T]) Do(ctx context.Context, send func(T) (*Response, error), expired func(*Response) bool) (*Response, error) {
	value, gen, err := s.Get(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := send(value)
	if err != nil || s.fixed || !expired(resp) {
		return resp, err
	}
	s.Invalidate(gen)
	if value, _, err = s.Get(ctx); err != nil {
		return nil, err
	}
	return send(value)
}

// Unauthorized is the usual expired test: HTTP 401.
func Unauthorized(resp *Response) bool { return resp.StatusCode == http.StatusUnauthorized }

// fixedCredential is the LoginFunc of a credential used as it is.
func fixedCredential[T any](value T) LoginFunc[T] {
	return func(context.Context) (T, time.Time, error) { return value, time.Time{}, nil }
}
