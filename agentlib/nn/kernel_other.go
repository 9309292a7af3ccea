//go:build !amd64

package nn

// hasKernel is false: the micro-kernel exists only on amd64.
func hasKernel() bool { return false }

func kern4x16(k int, a *float32, ars, aks int, b *float32, bks int, c *float32, cs int) {
	panic("nn: no micro-kernel on this architecture")
}

func adam8(n int, params, grads, m1, m2 *float32, coef *[8]float32) {
	panic("nn: no micro-kernel on this architecture")
}
