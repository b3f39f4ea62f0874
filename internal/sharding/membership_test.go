package sharding

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

func lease(holder string, renewed time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "ring-" + holder, Namespace: "ns"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](15),
			RenewTime: &metav1.MicroTime{Time: renewed}},
	}
}

func newTestMembership(t *testing.T, clock *clocktesting.FakeClock) *Membership {
	t.Helper()
	m, err := NewMembership(Config{Client: fake.NewClientset(), Namespace: "ns", Ring: "ring", Identity: "a",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second, Log: logr.Discard(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The membership as the Lease watch and the member's own Lease drive it, on a fake clock: who counts, from
// when and until when.
func TestMembershipFollowsTheLeases(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	m := newTestMembership(t, clock)
	var changes [][2][]string
	m.Subscribe(func(before, after *Ring) { changes = append(changes, [2][]string{before.Members(), after.Members()}) })
	expect := func(want ...string) {
		t.Helper()
		if got := m.Ring().Members(); !slices.Equal(got, want) {
			t.Fatalf("members %v, want %v", got, want)
		}
	}

	m.seen(lease("b", clock.Now()))
	m.seen(lease("a", clock.Now())) // our own Lease, from an earlier process: not a member until we hold it
	expect()
	m.mu.Lock()
	m.synced = true
	m.mu.Unlock()
	m.update()
	expect() // listed the others, but does not hold its own Lease yet: owns nothing
	if m.Owns("any-task") {
		t.Fatal("a member that does not hold its Lease owns a task")
	}
	m.setHolding(true)
	expect("a", "b")
	if want := clock.Now().Add(2 * time.Second); !m.SettledAt().Equal(want) {
		t.Fatalf("settled at %s, want one RetryPeriod after the change (%s)", m.SettledAt(), want)
	}

	// c joins; b renews every 2 s and stays; c stops renewing and leaves 15 s after its last renewal was seen.
	m.seen(lease("c", clock.Now()))
	expect("a", "b", "c")
	for range 7 {
		clock.Step(2 * time.Second)
		m.seen(lease("b", clock.Now()))
		m.update()
	}
	expect("a", "b", "c") // 14 s since c's renewal
	relabelled := lease("c", clock.Now().Add(-14*time.Second))
	relabelled.Labels = map[string]string{"other": "label"}
	m.seen(relabelled) // an update that renews nothing does not keep c alive
	clock.Step(time.Second)
	m.update()
	expect("a", "b")

	// A Lease first seen long after its last renewal (a crashed member's, found by a replica that started
	// later) counts as gone at once; one renewed within its duration counts.
	m.seen(lease("crashed", clock.Now().Add(-16*time.Second)))
	m.seen(lease("recent", clock.Now().Add(-14*time.Second)))
	expect("a", "b", "recent")
	released0 := lease("recent", clock.Now().Add(-14*time.Second))
	released0.Spec.HolderIdentity = ptr.To("")
	m.seen(released0)
	expect("a", "b")

	// b releases its Lease (graceful stop): it leaves at once.
	released := lease("b", clock.Now())
	released.Spec.HolderIdentity = ptr.To("")
	m.seen(released)
	expect("a")

	// We lose our Lease: we own nothing, whoever else is there.
	m.seen(lease("d", clock.Now()))
	expect("a", "d")
	m.setHolding(false)
	expect()

	want := [][2][]string{{nil, {"a", "b"}}, {{"a", "b"}, {"a", "b", "c"}}, {{"a", "b", "c"}, {"a", "b"}},
		{{"a", "b"}, {"a", "b", "recent"}}, {{"a", "b", "recent"}, {"a", "b"}}, {{"a", "b"}, {"a"}}, {{"a"}, {"a", "d"}}, {{"a", "d"}, nil}}
	if len(changes) != len(want) {
		t.Fatalf("subscribers were told %d changes, want %d: %v", len(changes), len(want), changes)
	}
	for i := range want {
		if !slices.Equal(changes[i][0], want[i][0]) || !slices.Equal(changes[i][1], want[i][1]) {
			t.Fatalf("change %d: %v, want %v", i, changes[i], want[i])
		}
	}
}

func TestMembershipRefusesBadTimings(t *testing.T) {
	for _, c := range []struct{ duration, renew, retry time.Duration }{
		{15 * time.Second, 15 * time.Second, 2 * time.Second},
		{15 * time.Second, 10 * time.Second, 10 * time.Second},
		{15 * time.Second, 10 * time.Second, 0},
	} {
		_, err := NewMembership(Config{Client: fake.NewClientset(), Namespace: "ns", Ring: "r", Identity: "a",
			LeaseDuration: c.duration, RenewDeadline: c.renew, RetryPeriod: c.retry})
		if err == nil {
			t.Errorf("timings %s/%s/%s accepted", c.duration, c.renew, c.retry)
		}
	}
	if _, err := NewMembership(Config{Namespace: "ns", Ring: "r", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}); err == nil {
		t.Error("a member without an identity accepted")
	}
}

// Run holds the Lease and follows it; the ring is looked at again on each renewal and each expiry, not in a
// loop (a wake-up that woke itself once kept a core busy).
func TestMembershipRunIsQuietBetweenRenewals(t *testing.T) {
	clientset := fake.NewClientset()
	m, err := NewMembership(Config{Client: clientset, Namespace: "ns", Ring: "ring", Identity: "a",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	// renewTime reads the Lease's last renewal; zero before the Lease exists.
	renewTime := func() time.Time {
		l, err := clientset.CoordinationV1().Leases("ns").Get(ctx, m.LeaseName(), metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return time.Time{}
		}
		return l.Spec.RenewTime.Time
	}
	g := NewWithT(t)
	g.Eventually(func() []string { return m.Ring().Members() }, 30*time.Second, 10*time.Millisecond).
		Should(Equal([]string{"a"}), "the member holds its Lease")
	before := m.rebuilds.Load()
	var seen []time.Time
	g.Eventually(func() int {
		if r := renewTime(); !r.IsZero() && (len(seen) == 0 || !r.Equal(seen[len(seen)-1])) {
			seen = append(seen, r)
		}
		return len(seen)
	}, 30*time.Second, 10*time.Millisecond).Should(BeNumerically(">", 5), "five renewals")
	if n := m.rebuilds.Load() - before; n > 40 {
		t.Fatalf("%d rebuilds of the ring over five renewals: the expiry loop spins", n)
	} else {
		t.Logf("%d rebuilds over five renewals", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l, err := clientset.CoordinationV1().Leases("ns").Get(context.Background(), m.LeaseName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if holder := ptr.Deref(l.Spec.HolderIdentity, ""); holder != "" {
		t.Fatalf("after Run returned the Lease is still held by %q: it must be released", holder)
	}
	if l.Labels[RingLabel] != "ring" {
		t.Fatalf("the Lease's labels %v lack %s=ring", l.Labels, RingLabel)
	}
}
