//go:build linux

// Package cputime lets agentlib's benchmarks report the CPU time of the benchmark's thread,
// which on a machine shared with other work is a steadier figure than wall time.
package cputime

import (
	"runtime"
	"syscall"
	"testing"
)

// Start locks the benchmark to its OS thread and starts measuring that thread's CPU time.
// Call the returned stop at the end of the timed loop: it reports "cpu-ns/op" and unlocks the
// thread.
func Start(b *testing.B) (stop func()) {
	runtime.LockOSThread()
	start := threadCPU()
	return func() {
		b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "cpu-ns/op")
		runtime.UnlockOSThread()
	}
}

func threadCPU() int64 {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
