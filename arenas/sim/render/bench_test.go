package render

import (
	"syscall"
	"testing"
	"time"

	"github.com/optoloop/optoloop/arenas"
)

// BenchmarkRender2160x1920 renders reference-rig frames (a moving worm, the light switching)
// and reports frames per second of wall time and per second of the process's CPU time (the
// latter is robust to other processes sharing the machine); run it with -cpu 1 for the
// per-core figure.
func BenchmarkRender2160x1920(b *testing.B) {
	cal := arenas.DefaultCalibration()
	cam, err := New(DefaultConfig(cal))
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, cal.Width*cal.Height)
	worms := make([]Worm, 16)
	for i := range worms {
		worms[i] = testWorm(1080+float64(i)*0.7, 960-float64(i)*0.4, 0.1*float64(i), 54, 4.5, 5)
	}
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		cam.Render(dst, worms[i%len(worms)], i%6 < 3)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	if cpu := cpuTime(b) - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "frames/cpu-s")
	}
}

// BenchmarkNew2160x1920 measures building a reference-rig camera (background and noise).
func BenchmarkNew2160x1920(b *testing.B) {
	cfg := DefaultConfig(arenas.DefaultCalibration())
	for b.Loop() {
		if _, err := New(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
