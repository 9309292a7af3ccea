package nn

import "golang.org/x/sys/cpu"

// hasKernel reports whether the AVX2/FMA micro-kernel can run on this CPU.
func hasKernel() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

// kern4x16 is implemented in kernel_amd64.s.
//
//go:noescape
func kern4x16(k int, a *float32, ars, aks int, b *float32, bks int, c *float32, cs int)

// adam8 is implemented in kernel_amd64.s.
//
//go:noescape
func adam8(n int, params, grads, m1, m2 *float32, coef *[8]float32)
