package track

import (
	"syscall"
	"time"
	"unsafe"
)

// cpuTime is the CPU time the process has used (all threads: Go and OpenCV's), so that
// per-frame costs can be measured on a machine shared with other jobs.
func cpuTime() (time.Duration, bool) {
	const clockProcessCPUTimeID = 2
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
