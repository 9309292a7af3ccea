package childproc

import "syscall"

// procAttr puts the process in a process group of its own (a Ctrl-C at the terminal reaches the
// parent, which stops the process in order) and has the kernel kill it when the thread that
// started it dies: Go's runtime does not end its threads while the process lives, so that is
// when the parent process dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
