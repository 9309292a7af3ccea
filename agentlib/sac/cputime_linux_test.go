package sac

import (
	"runtime"
	"syscall"
	"testing"
)

// cpuTimer measures the CPU time of the benchmark's thread, which on a machine shared with
// other work is a steadier figure than wall time. Call stop at the end of the timed loop.
func cpuTimer(b *testing.B) (stop func()) {
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
