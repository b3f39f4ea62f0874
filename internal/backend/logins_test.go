package backend

import (
	"context"
	"testing"
	"time"
)

func TestLogInAnewLogsInOnceWhetherOrNotAPollHeldASession(t *testing.T) {
	var vendorLogins, metricLogins int
	logins := NewLoginCounter(func() { metricLogins++ })
	s := NewSession(func(context.Context) (string, time.Time, error) {
		vendorLogins++
		return "token", time.Time{}, nil
	}, 0, logins.Count)
	ctx := context.Background()

	if err := LogInAnew(ctx, s, logins); err != nil || vendorLogins != 1 {
		t.Fatalf("with no session: error %v, %d logins; want one login", err, vendorLogins)
	}
	if _, _, err := s.Get(ctx); err != nil || vendorLogins != 1 {
		t.Fatalf("a poll after the check: error %v, %d logins; want the check's session reused", err, vendorLogins)
	}
	if err := LogInAnew(ctx, s, logins); err != nil || vendorLogins != 2 {
		t.Fatalf("with a poll's session: error %v, %d logins; want exactly one more", err, vendorLogins)
	}
	if metricLogins != vendorLogins {
		t.Errorf("onLogin called %d times for %d logins", metricLogins, vendorLogins)
	}
}
