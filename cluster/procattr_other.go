//go:build unix && !linux

package cluster

import "syscall"

// procAttr puts a child in a process group of its own. Outside Linux the kernel does not kill
// children when the supervisor dies, so Up refuses to run (see supported).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// supported reports whether Up can run here: only on Linux, where children die with the
// supervisor (Pdeathsig).
const supported = false
