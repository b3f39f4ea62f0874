package sharding

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// keys returns n UUID-shaped keys, the same in every run.
func keys(n int) []string {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()&(1<<48-1))
	}
	return out
}

// podNames returns n names shaped like a Deployment's pods: the same prefix, random suffixes.
func podNames(rng *rand.Rand, n int) []string {
	const letters = "bcdfghjklmnpqrstvwxz2456789"
	out := make([]string, n)
	for i := range out {
		suffix := make([]byte, 5)
		for j := range suffix {
			suffix[j] = letters[rng.IntN(len(letters))]
		}
		out[i] = fmt.Sprintf("asynctask-operator-7c9f8d6b5-%s", suffix)
	}
	return out
}

func loads(r *Ring, keys []string) map[string]int {
	out := map[string]int{}
	for _, m := range r.Members() {
		out[m] = 0
	}
	for _, k := range keys {
		out[r.Owner(k)]++
	}
	return out
}

// The bound: max/mean <= 1.2 at 3 replicas and 10,000 tasks, for any names the pods get.
func TestRingBalance(t *testing.T) {
	tasks := keys(10000)
	rng := rand.New(rand.NewPCG(1, 2))
	worst := 0.0
	for range 2000 {
		r := NewRing(podNames(rng, 3))
		mean := float64(len(tasks)) / 3
		for _, n := range loads(r, tasks) {
			worst = max(worst, float64(n)/mean)
		}
	}
	t.Logf("worst max/mean over 2,000 sets of 3 names: %.3f", worst)
	if worst > 1.2 {
		t.Fatalf("max/mean load %.3f > 1.2", worst)
	}
}

// A member joining takes keys only from the others, about 1/N of them; one leaving gives away only its own.
func TestRingMovesOnlyWhatItMust(t *testing.T) {
	tasks := keys(10000)
	rng := rand.New(rand.NewPCG(3, 4))
	names := podNames(rng, 4)
	three, four := NewRing(names[:3]), NewRing(names)
	moved := 0
	for _, k := range tasks {
		before, after := three.Owner(k), four.Owner(k)
		if before != after {
			moved++
			if after != names[3] {
				t.Fatalf("key %s moved from %s to %s, not to the new member", k, before, after)
			}
		}
	}
	share := float64(moved) / float64(len(tasks))
	t.Logf("the fourth member took %.1f%% of the keys", 100*share)
	if share < 0.25/1.2 || share > 0.25*1.2 {
		t.Fatalf("the fourth member took %.3f of the keys, want about 0.25", share)
	}
}

func TestRingEdges(t *testing.T) {
	if got := NewRing(nil).Owner("x"); got != "" {
		t.Fatalf("empty ring owner = %q", got)
	}
	var none *Ring
	if none.Owner("x") != "" || none.Len() != 0 || none.Members() != nil {
		t.Fatal("a nil ring must behave as an empty one")
	}
	one := NewRing([]string{"a", "a"})
	if one.Len() != 1 || one.Owner("anything") != "a" {
		t.Fatalf("one member: len %d, owner %q", one.Len(), one.Owner("anything"))
	}
	// The same members in any order make the same ring.
	a, b := NewRing([]string{"x", "y", "z"}), NewRing([]string{"z", "x", "y"})
	for _, k := range keys(1000) {
		if a.Owner(k) != b.Owner(k) {
			t.Fatalf("key %s: %s vs %s", k, a.Owner(k), b.Owner(k))
		}
	}
}
