"""Should qsvit bind cuDNN? Times SDTv2's convolution shapes on the GPU through cuDNN (what PyTorch runs) against the
same work as one cuBLAS GEMM over im2col'd input (the im2col itself timed apart), fp32 with TF32 off, and the int8 GEMM.

  python3 bench/pytorch/conv_vs_gemm.py        # one table: ms per layer call
"""
import time
import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True


def ms(f, reps=20):
    f(); torch.cuda.synchronize()
    t0 = time.time()
    for _ in range(reps): f()
    torch.cuda.synchronize()
    return (time.time() - t0) / reps * 1e3


# (label, frames T*B, cin, cout, side, kernel, stride, groups)
LAYERS = [
    ("cifar 3x3 16-64 @32", 4000, 16, 64, 32, 3, 1, 1),
    ("cifar 3x3 64-256 @8", 4000, 64, 256, 8, 3, 1, 1),
    ("cifar pw 32-64 @16", 4000, 32, 64, 16, 1, 1, 1),
    ("cifar dw7 64 @16", 4000, 64, 64, 16, 7, 1, 64),
    ("55M 3x3 128-512 @56", 128, 128, 512, 56, 3, 1, 1),
    ("55M 3x3 256-1024 @28", 128, 256, 1024, 28, 3, 1, 1),
    ("55M pw 512-2048 @14", 128, 512, 2048, 14, 1, 1, 1),
    ("55M dw7 256 @56", 128, 256, 256, 56, 7, 1, 256),
]

print(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
print("| layer | frames | cuDNN fp32 ms | im2col ms | GEMM fp32 ms | GEMM int8 ms | cuDNN fp16 ms |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for label, f, cin, cout, side, k, s, g in LAYERS:
    x = torch.randn(f, cin, side, side, device="cuda")
    w = torch.randn(cout, cin // g, k, k, device="cuda")
    conv = ms(lambda: F.conv2d(x, w, stride=s, padding=k // 2, groups=g))
    xh, wh = x.half(), w.half()
    conv16 = ms(lambda: F.conv2d(xh, wh, stride=s, padding=k // 2, groups=g))
    if g == 1:
        cols = F.unfold(x, k, padding=k // 2, stride=s)            # [f, cin*k*k, L]
        im2col = ms(lambda: F.unfold(x, k, padding=k // 2, stride=s))
        a = w.reshape(cout, -1)
        b = cols.permute(1, 0, 2).reshape(cin * k * k, -1)          # [K, f*L]
        gemm = ms(lambda: a @ b)
        kk = (cin * k * k + 3) // 4 * 4
        a8 = torch.randint(-127, 127, (cout, kk), device="cuda", dtype=torch.int8)
        b8 = torch.randint(0, 2, (b.shape[1], kk), device="cuda", dtype=torch.int8)
        try:
            gemm8 = f"{ms(lambda: torch._int_mm(b8, a8.t())):.3f}"
        except Exception as e:  # _int_mm has shape rules of its own
            gemm8 = type(e).__name__
        print(f"| {label} | {f} | {conv:.3f} | {im2col:.3f} | {gemm:.3f} | {gemm8} | {conv16:.3f} |", flush=True)
        del cols, b
    else:
        print(f"| {label} | {f} | {conv:.3f} | – | – | – | {conv16:.3f} |", flush=True)
    del x, w, xh, wh
    torch.cuda.empty_cache()
