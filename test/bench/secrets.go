package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// unrelatedNamespace holds the Secrets no backend uses, as Helm's release Secrets are.
	unrelatedNamespace = "unrelated"
	// unrelatedSecretBytes is the data of each unrelated Secret: 256 KiB, as the measurement that found the
	// problem used (500 of them, 125 MiB).
	unrelatedSecretBytes = 256 << 10
	// unrelatedSettle is how long the manager is left to receive the Secrets' watch events before its memory
	// is read again.
	unrelatedSettle = 20 * time.Second
)

// unrelatedSecrets is the -unrelated-secrets-mib scenario: the manager's memory before and after that many MiB
// of Secrets that no backend refers to are created in another namespace. An operator that caches every
// Secret of the cluster grows by about that much; one that watches Secrets as metadata does not.
func (b *bench) unrelatedSecrets(ctx context.Context, c client.Client, mgr *managerProcess) error {
	count := b.cfg.unrelatedSecretsMiB << 20 / unrelatedSecretBytes
	logf("Unrelated Secrets: creating %d Secrets of %d KiB (%d MiB) in namespace %s", count, unrelatedSecretBytes>>10,
		b.cfg.unrelatedSecretsMiB, unrelatedNamespace)
	before, err := managerMemory(mgr)
	if err != nil {
		return err
	}
	if err := createUnrelatedSecrets(ctx, c, count, b.cfg.createWorkers); err != nil {
		return err
	}
	logf("  created; waiting %s for the manager to receive them", unrelatedSettle)
	if err := sleep(ctx, unrelatedSettle, mgr); err != nil {
		return err
	}
	after, err := managerMemory(mgr)
	if err != nil {
		return err
	}
	peak, _ := procMemKiB(mgr.pid(), "VmHWM")
	report := fmt.Sprintf("## Manager memory with %d MiB of unrelated Secrets\n\n"+
		"%d Secrets of %d KiB in namespace %s, none referred to by a backend; %d AsyncTasks running. "+
		"Heap in use is read after a garbage collection; RSS from /proc/<pid>/status.\n\n"+
		"| | RSS (VmRSS) | heap in use |\n|---|---:|---:|\n"+
		"| before | %.1f MiB | %.1f MiB |\n| after | %.1f MiB | %.1f MiB |\n| growth | %+.1f MiB | %+.1f MiB |\n\n"+
		"Peak RSS (VmHWM): %.1f MiB.\n",
		b.cfg.unrelatedSecretsMiB, count, unrelatedSecretBytes>>10, unrelatedNamespace, b.cfg.tasks,
		kibToMiB(before.rssKiB), bytesToMiB(before.heapInuse), kibToMiB(after.rssKiB), bytesToMiB(after.heapInuse),
		kibToMiB(after.rssKiB-before.rssKiB), bytesToMiB(after.heapInuse)-bytesToMiB(before.heapInuse), kibToMiB(peak))
	fmt.Print("\n" + report)
	if b.cfg.out != "" {
		return os.WriteFile(b.cfg.out, []byte(report), 0o644)
	}
	return nil
}

// managerMemoryReading is the manager's resident set and heap at one moment.
type managerMemoryReading struct {
	rssKiB    int64
	heapInuse uint64
}

// managerMemory has the manager collect garbage (so that freed memory is not counted as heap in use), then
// reads its RSS.
func managerMemory(mgr *managerProcess) (managerMemoryReading, error) {
	_, heap, err := mgr.memory()
	if err != nil {
		return managerMemoryReading{}, err
	}
	rss, err := procMemKiB(mgr.pid(), "VmRSS")
	if err != nil {
		return managerMemoryReading{}, err
	}
	return managerMemoryReading{rssKiB: rss, heapInuse: heap.HeapInuse}, nil
}

// createUnrelatedSecrets creates the namespace and count Secrets in it, with a few workers.
func createUnrelatedSecrets(ctx context.Context, c client.Client, count, workers int) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: unrelatedNamespace}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", unrelatedNamespace, err)
	}
	data := bytes.Repeat([]byte{'h'}, unrelatedSecretBytes)
	return forEach(ctx, count, workers, func(ctx context.Context, i int) error {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: unrelatedNamespace, Name: fmt.Sprintf("sh.helm.release.v1.app-%04d.v1", i),
				Labels: map[string]string{"owner": "helm"}},
			Type: "helm.sh/release.v1",
			Data: map[string][]byte{"release": data},
		}
		if err := c.Create(ctx, secret); err != nil {
			return fmt.Errorf("creating unrelated Secret %d: %w", i, err)
		}
		return nil
	})
}

func kibToMiB(kib int64) float64  { return float64(kib) / 1024 }
func bytesToMiB(b uint64) float64 { return float64(b) / (1 << 20) }
