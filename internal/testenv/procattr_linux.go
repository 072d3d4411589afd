package testenv

import "syscall"

// ChildProcAttr is the SysProcAttr of a server process a test starts: the kernel kills the
// process when the test binary dies, so that a crashed or interrupted test leaves none behind.
func ChildProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
