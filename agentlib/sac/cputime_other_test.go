//go:build !linux

package sac

import "testing"

// cpuTimer reports nothing where the thread's CPU time is not available.
func cpuTimer(*testing.B) (stop func()) { return func() {} }
