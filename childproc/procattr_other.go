//go:build !linux

package childproc

import "syscall"

// procAttr puts the process in a process group of its own. Outside Linux nothing kills it when
// its parent dies: stop it with Stop or Kill.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
