# 512-bit VNNI micro-kernels of SpikeGemm (IntIsa.Vnni512): one 4-row × 64-column (or 32-column) tile of int32 C += A · B over lane
# groups [g0, g1), as SpikeGemm.Tile256<Vnni8/Vnni16> computes it at 256 bits. .NET 10 exposes vpdpbusd / vpdpwssd only on
# 128- and 256-bit registers, so these functions are assembled here and their bytes embedded in Vnni512Kernels.cs
# (regenerate with assemble.sh). System V x86-64, one argument (rdi): a pointer to
#   { byte* a; long lda; int* b; long* off; long g0; long g1; int* c; long ldc }   (lda and ldc in bytes)
# a: row 0 of the tile's 4 weight rows (4-byte lane-group words); the word of group g and column n of B is
# b[off[g] + n] (b already points at the tile's first column). The first K block (g0 = 0) starts from zero, later ones
# from C. Uses only caller-saved registers; no stack.
    .intel_syntax noprefix
    .text

# The operands from the argument block (rdi); the flags say whether g0 is 0 (then the sums start from zero, label 1 otherwise).
.macro ARGS
    mov     rax, [rdi]              # a
    mov     r8,  [rdi + 8]          # lda
    mov     rdx, [rdi + 16]         # b
    mov     rcx, [rdi + 24]         # off
    mov     r9,  [rdi + 32]         # g0
    mov     r10, [rdi + 40]         # g1
    mov     r11, [rdi + 48]         # c
    mov     rsi, [rdi + 56]         # ldc
    test    r9, r9
    jnz     1f
.endm

# Sums zmm0 .. zmm<last> start from zero.
.macro ZEROSUMS last
    vpxord  zmm0, zmm0, zmm0
    .irp r, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .if \r <= \last
    vmovdqa64 zmm\r, zmm0
    .endif
    .endr
.endm

# a and off at group g0, r10 the groups left (none: on to the stores at label 4), r9 = 3 · lda.
.macro FIRSTGROUP
    lea     rax, [rax + r9 * 4]     # a's word of group g0
    lea     rcx, [rcx + r9 * 8]     # off + g0
    sub     r10, r9                 # groups left
    jle     4f
    lea     r9, [r8 + r8 * 2]       # 3 · lda
.endm

# One row of the tile's sums (four zmm registers, 64 int32) from or to [r11].
.macro LOADROW a, b, c, d
    vmovdqu32 zmm\a, [r11]
    vmovdqu32 zmm\b, [r11 + 64]
    vmovdqu32 zmm\c, [r11 + 128]
    vmovdqu32 zmm\d, [r11 + 192]
.endm
.macro LOADHALF a, b
    vmovdqu32 zmm\a, [r11]
    vmovdqu32 zmm\b, [r11 + 64]
.endm
.macro STOREHALF a, b
    vmovdqu32 [r11], zmm\a
    vmovdqu32 [r11 + 64], zmm\b
.endm
.macro STOREROW a, b, c, d
    vmovdqu32 [r11], zmm\a
    vmovdqu32 [r11 + 64], zmm\b
    vmovdqu32 [r11 + 128], zmm\c
    vmovdqu32 [r11 + 192], zmm\d
.endm

.macro TILE name, op
    .globl \name
    .p2align 6
\name:
    ARGS
    ZEROSUMS 15
    jmp     2f
1:
    LOADROW 0, 1, 2, 3
    add     r11, rsi
    LOADROW 4, 5, 6, 7
    add     r11, rsi
    LOADROW 8, 9, 10, 11
    add     r11, rsi
    LOADROW 12, 13, 14, 15
2:
    FIRSTGROUP
    .p2align 4
3:
    mov     r11, [rcx]
    lea     r11, [rdx + r11 * 4]    # B words of this group, 64 columns
    vmovdqu32 zmm16, [r11]
    vmovdqu32 zmm17, [r11 + 64]
    vmovdqu32 zmm18, [r11 + 128]
    vmovdqu32 zmm19, [r11 + 192]
    vpbroadcastd zmm20, [rax]
    vpbroadcastd zmm21, [rax + r8]
    vpbroadcastd zmm22, [rax + r8 * 2]
    vpbroadcastd zmm23, [rax + r9]
    \op     zmm0, zmm16, zmm20      # acc, B (u8 or s16), A (s8 or s16)
    \op     zmm1, zmm17, zmm20
    \op     zmm2, zmm18, zmm20
    \op     zmm3, zmm19, zmm20
    \op     zmm4, zmm16, zmm21
    \op     zmm5, zmm17, zmm21
    \op     zmm6, zmm18, zmm21
    \op     zmm7, zmm19, zmm21
    \op     zmm8, zmm16, zmm22
    \op     zmm9, zmm17, zmm22
    \op     zmm10, zmm18, zmm22
    \op     zmm11, zmm19, zmm22
    \op     zmm12, zmm16, zmm23
    \op     zmm13, zmm17, zmm23
    \op     zmm14, zmm18, zmm23
    \op     zmm15, zmm19, zmm23
    add     rax, 4
    add     rcx, 8
    dec     r10
    jnz     3b
4:
    mov     r11, [rdi + 48]
    STOREROW 0, 1, 2, 3
    add     r11, rsi
    STOREROW 4, 5, 6, 7
    add     r11, rsi
    STOREROW 8, 9, 10, 11
    add     r11, rsi
    STOREROW 12, 13, 14, 15
    vzeroupper
    ret
.endm

# The same for a 4-row × 32-column tile (the 32-column remainder of a block): 8 accumulators, zmm0-7.
.macro TILE32 name, op
    .globl \name
    .p2align 6
\name:
    ARGS
    ZEROSUMS 7
    jmp     2f
1:
    LOADHALF 0, 1
    add     r11, rsi
    LOADHALF 2, 3
    add     r11, rsi
    LOADHALF 4, 5
    add     r11, rsi
    LOADHALF 6, 7
2:
    FIRSTGROUP
    .p2align 4
3:
    mov     r11, [rcx]
    lea     r11, [rdx + r11 * 4]    # B words of this group, 32 columns
    vmovdqu32 zmm16, [r11]
    vmovdqu32 zmm17, [r11 + 64]
    vpbroadcastd zmm20, [rax]
    vpbroadcastd zmm21, [rax + r8]
    vpbroadcastd zmm22, [rax + r8 * 2]
    vpbroadcastd zmm23, [rax + r9]
    \op     zmm0, zmm16, zmm20
    \op     zmm1, zmm17, zmm20
    \op     zmm2, zmm16, zmm21
    \op     zmm3, zmm17, zmm21
    \op     zmm4, zmm16, zmm22
    \op     zmm5, zmm17, zmm22
    \op     zmm6, zmm16, zmm23
    \op     zmm7, zmm17, zmm23
    add     rax, 4
    add     rcx, 8
    dec     r10
    jnz     3b
4:
    mov     r11, [rdi + 48]
    STOREHALF 0, 1
    add     r11, rsi
    STOREHALF 2, 3
    add     r11, rsi
    STOREHALF 4, 5
    add     r11, rsi
    STOREHALF 6, 7
    vzeroupper
    ret
.endm

    TILE spike_tile_u8s8, vpdpbusd
    TILE spike_tile_s16s16, vpdpwssd
    TILE32 spike_tile32_u8s8, vpdpbusd
    TILE32 spike_tile32_s16s16, vpdpwssd
