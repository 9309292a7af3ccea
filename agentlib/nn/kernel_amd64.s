#include "textflag.h"

// func kern4x16(k int, a *float32, ars, aks int, b *float32, bks int, c *float32, cs int)
//
// C[r][j] += sum_{l<k} A(r, l) * B(l, j) for r < 4, j < 16, where A(r, l) is at a + r*ars + l*aks,
// B(l, j) at b + l*bks + 4*j and C[r][j] at c + r*cs + 4*j (strides in bytes). AVX2 + FMA.
TEXT ·kern4x16(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ ars+16(FP), R8
	MOVQ aks+24(FP), R9
	MOVQ b+32(FP), DI
	MOVQ bks+40(FP), R10
	MOVQ c+48(FP), DX
	MOVQ cs+56(FP), R11
	LEAQ (R8)(R8*2), R12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JZ    store

loop:
	VMOVUPS      (DI), Y8
	VMOVUPS      32(DI), Y9
	VBROADCASTSS (SI), Y10
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VBROADCASTSS (SI)(R8*1), Y11
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS (SI)(R8*2), Y12
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VBROADCASTSS (SI)(R12*1), Y13
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         R9, SI
	ADDQ         R10, DI
	DECQ         CX
	JNZ          loop

store:
	VADDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DX)
	VADDPS  32(DX), Y1, Y1
	VMOVUPS Y1, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y2, Y2
	VMOVUPS Y2, (DX)
	VADDPS  32(DX), Y3, Y3
	VMOVUPS Y3, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y4, Y4
	VMOVUPS Y4, (DX)
	VADDPS  32(DX), Y5, Y5
	VMOVUPS Y5, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y6, Y6
	VMOVUPS Y6, (DX)
	VADDPS  32(DX), Y7, Y7
	VMOVUPS Y7, 32(DX)
	VZEROUPPER
	RET

// func adam8(n int, params, grads, m1, m2 *float32, coef *[8]float32)
//
// The Adam update of Adam.Step on n elements (n a multiple of 8), AVX2 + FMA. coef holds
// beta1, 1-beta1, beta2, 1-beta2, step, 1/sqrt(1-beta2^t), eps, weight decay.
TEXT ·adam8(SB), NOSPLIT, $0-48
	MOVQ         n+0(FP), CX
	MOVQ         params+8(FP), SI
	MOVQ         grads+16(FP), DI
	MOVQ         m1+24(FP), R8
	MOVQ         m2+32(FP), R9
	MOVQ         coef+40(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	VBROADCASTSS 28(AX), Y15
	SHRQ         $3, CX
	JZ           adamdone

adamloop:
	VMOVUPS      (DI), Y0
	VMOVUPS      (SI), Y1
	VFMADD231PS  Y1, Y15, Y0
	VMOVUPS      (R8), Y2
	VMULPS       Y8, Y2, Y2
	VFMADD231PS  Y0, Y9, Y2
	VMOVUPS      Y2, (R8)
	VMOVUPS      (R9), Y3
	VMULPS       Y10, Y3, Y3
	VMULPS       Y0, Y0, Y4
	VFMADD231PS  Y4, Y11, Y3
	VMOVUPS      Y3, (R9)
	VSQRTPS      Y3, Y5
	VMULPS       Y13, Y5, Y5
	VADDPS       Y14, Y5, Y5
	VDIVPS       Y5, Y2, Y6
	VFNMADD231PS Y6, Y12, Y1
	VMOVUPS      Y1, (SI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	ADDQ         $32, R8
	ADDQ         $32, R9
	DECQ         CX
	JNZ          adamloop

adamdone:
	VZEROUPPER
	RET
