package nn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// gemmAcc computes C += op(A) B with C n x m (row stride ldc), B k x m (row stride ldb) and
// op(A) n x k: A itself (n x k, row stride lda) when transA is false, or the transpose of A
// (k x n, row stride lda) when it is true. It uses the AVX2/FMA micro-kernel on 4 x 16 blocks
// when fast is set and m is a multiple of 16, and gonum's Sgemm for everything else.
func gemmAcc(fast, transA bool, n, m, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if n == 0 || m == 0 || k == 0 {
		return
	}
	tA := blas.NoTrans
	rowsA, colsA := n, k
	if transA {
		tA = blas.Trans
		rowsA, colsA = k, n
	}
	main := 0
	if fast && m%16 == 0 && hasKernel() {
		main = n - n%4
		// Bounds: the kernel reads and writes through raw pointers.
		if len(a) < (rowsA-1)*lda+colsA || len(b) < (k-1)*ldb+m || len(c) < (n-1)*ldc+m {
			panic("nn: gemm operand too short")
		}
		ars, aks := 4*lda, 4
		if transA {
			ars, aks = 4, 4*lda
		}
		for r := 0; r < main; r += 4 {
			ar := r * lda
			if transA {
				ar = r
			}
			for j := 0; j < m; j += 16 {
				kern4x16(k, &a[ar], ars, aks, &b[j], 4*ldb, &c[r*ldc+j], 4*ldc)
			}
		}
	}
	if main == n {
		return
	}
	rest := n - main
	var sub blas32.General
	if transA {
		sub = blas32.General{Rows: k, Cols: rest, Stride: lda, Data: a[main:]}
	} else {
		sub = blas32.General{Rows: rest, Cols: k, Stride: lda, Data: a[main*lda:]}
	}
	blas32.Gemm(tA, blas.NoTrans, 1, sub,
		blas32.General{Rows: k, Cols: m, Stride: ldb, Data: b},
		1, blas32.General{Rows: rest, Cols: m, Stride: ldc, Data: c[main*ldc:]})
}
