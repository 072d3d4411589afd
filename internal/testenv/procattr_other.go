//go:build !linux

package testenv

import "syscall"

// ChildProcAttr: only Linux can tie a child's life to its parent's; elsewhere the test's cleanup
// alone ends the processes.
func ChildProcAttr() *syscall.SysProcAttr { return nil }
