"""Where PyTorch eager spends an SDTv2 forward pass on the GPU (torch.profiler), for reading beside
`qsvit bench --device cuda --profile`: fp32 with TF32 off and cuDNN benchmark on, as sdtv2_torch.py's bench.

  python3 torch_profile.py --model cifar --batch 1000      # the bundled CIFAR model's architecture, random weights
  python3 torch_profile.py --model 55M --batch 32

Prints the unprofiled pass time, then device time per pass by kernel family, by aten op and the busiest kernels,
and one JSON line with all of it.
"""
import argparse, json, os, re, sys, time
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdtv2_torch import MODELS, SDTv2  # noqa: E402

FAMILIES = [  # (family, kernel-name pattern), first match wins
    ("conv (cuDNN)", r"cudnn|implicit_convolve|conv2d|xmma|fprop|dgrad|convolve|winograd|depthwise"),
    ("gemm", r"gemm|sgemm|cutlass|ampere|sm90|sm80|nvjet"),
    ("batch norm", r"batch_norm|bn_fw"),
    ("reduce (mean)", r"reduce"),
    ("copy / cat / stack", r"copy|cat|CatArray|direct_copy|fill"),
    ("elementwise (LIF, add, mul)", r"elementwise|vectorized|unrolled"),
]


def family(name):
    for fam, pat in FAMILIES:
        if re.search(pat, name, re.IGNORECASE):
            return fam
    return "other"


def device_time(e):
    for a in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(e, a):
            return getattr(e, a)
    return 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=list(MODELS), default="cifar")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--passes", type=int, default=5)
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dims, classes, stride, side = MODELS[a.model]
    torch.manual_seed(0)
    m = SDTv2(dims, classes=classes, stem_stride=stride).eval().cuda()
    x = torch.randn(a.batch, 3, side, side, device="cuda")
    with torch.no_grad():
        for _ in range(3):
            m(x)
        torch.cuda.synchronize()
        t0 = time.time()
        for _ in range(a.passes):
            m(x)
        torch.cuda.synchronize()
        pass_ms = (time.time() - t0) * 1000 / a.passes
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(a.passes):
                m(x)
            torch.cuda.synchronize()
    events = prof.key_averages()
    kernels = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA") and device_time(e) > 0]
    ops = [e for e in events if str(getattr(e, "device_type", "")).endswith("CPU") and e.key.startswith("aten::") and device_time(e) > 0]
    total = sum(device_time(e) for e in kernels) / a.passes / 1000
    fams = {}
    for e in kernels:
        f = fams.setdefault(family(e.key), [0, 0.0])
        f[0] += e.count
        f[1] += device_time(e)
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__}: {a.model} batch {a.batch}: eager fp32 pass {pass_ms:.2f} ms "
          f"({a.batch / pass_ms * 1000:.0f} img/s); kernel time {total:.2f} ms per pass")
    print("\n| kernel family | launches/pass | ms/pass | % of kernel time |\n|---|---|---|---|")
    for k, (n, t) in sorted(fams.items(), key=lambda kv: -kv[1][1]):
        print(f"| {k} | {n / a.passes:.0f} | {t / a.passes / 1000:.3f} | {100 * t / a.passes / 1000 / total:.1f} |")
    print("\n| aten op (self device time) | calls/pass | ms/pass | % |\n|---|---|---|---|")
    for e in sorted(ops, key=lambda e: -device_time(e))[:15]:
        t = device_time(e) / a.passes / 1000
        print(f"| {e.key} | {e.count / a.passes:.0f} | {t:.3f} | {100 * t / total:.1f} |")
    print("\n| kernel | launches/pass | ms/pass | % |\n|---|---|---|---|")
    for e in sorted(kernels, key=lambda e: -device_time(e))[:15]:
        t = device_time(e) / a.passes / 1000
        print(f"| {e.key[:90]} | {e.count / a.passes:.0f} | {t:.3f} | {100 * t / total:.1f} |")
    print(json.dumps({"model": a.model, "batch": a.batch, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "pass_ms": pass_ms, "kernel_ms": total,
                      "families": {k: v[1] / a.passes / 1000 for k, v in fams.items()},
                      "kernels": [[e.key, e.count / a.passes, device_time(e) / a.passes / 1000] for e in kernels]}))


if __name__ == "__main__":
    main()
