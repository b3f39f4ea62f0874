package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// profiler takes profiles from a manager that serves net/http/pprof (BENCH_PPROF_ADDR, -profile-dir).
type profiler struct {
	dir   string
	label string
	bin   string
	addr  string

	mu sync.Mutex
	// saved lists the profiles written, for the pprof -top text written at the end of the run.
	saved []string
	// errs are the profiles that could not be taken, for the details.
	errs []string
}

// newProfiler picks a free loopback port for the manager's pprof server.
func newProfiler(dir, label, bin string) (*profiler, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return nil, err
	}
	return &profiler{dir: dir, label: label, bin: bin, addr: addr}, nil
}

func (p *profiler) env() []string { return []string{"BENCH_PPROF_ADDR=" + p.addr} }

// fetch saves GET /debug/pprof/<path> as <kind>-<label>.pprof.
func (p *profiler) fetch(ctx context.Context, kind, path string, timeout time.Duration) {
	file := filepath.Join(p.dir, fmt.Sprintf("%s-%s.pprof", kind, p.label))
	err := p.get(ctx, "http://"+p.addr+"/debug/pprof/"+path, file, timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs = append(p.errs, fmt.Sprintf("%s profile: %v", kind, err))
		logf("  %s profile failed: %v", kind, err)
		return
	}
	p.saved = append(p.saved, file)
}

// problems returns what could not be done.
func (p *profiler) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.errs)
}

func (p *profiler) get(ctx context.Context, url, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// writeTops writes `go tool pprof -top -nodecount=30` of every saved profile next to it (.txt). Run after the
// measured phases: pprof takes CPU of its own.
func (p *profiler) writeTops() {
	p.mu.Lock()
	saved := slices.Clone(p.saved)
	p.mu.Unlock()
	for _, file := range saved {
		out := file[:len(file)-len(filepath.Ext(file))] + ".txt"
		cmd := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", p.bin, file)
		text, err := cmd.Output()
		if err != nil {
			msg := err.Error()
			if ee, ok := err.(*exec.ExitError); ok {
				msg += ": " + string(ee.Stderr)
			}
			p.mu.Lock()
			p.errs = append(p.errs, fmt.Sprintf("go tool pprof %s: %s", filepath.Base(file), msg))
			p.mu.Unlock()
			logf("go tool pprof -top %s: %s", file, msg)
			continue
		}
		if err := os.WriteFile(out, text, 0o644); err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err.Error())
			p.mu.Unlock()
			continue
		}
		logf("Profile %s, top: %s", file, out)
	}
}
