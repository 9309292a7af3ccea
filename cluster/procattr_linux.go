package cluster

import "syscall"

// procAttr puts a child in a process group of its own (so that a Ctrl-C at the terminal reaches
// only the supervisor, which stops the children in order, and Kill reaches everything the child
// forked) and has the kernel SIGKILL it when the thread that started it ends (see spawner).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// supported reports whether Up can run here.
const supported = true
