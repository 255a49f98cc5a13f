"""A plain-PyTorch SDTv2 (Spike-Driven Transformer V2) used only for side-by-side measurements with qsvit on the
device machine: same state_dict keys as the official classification/models.py, LIF neurons written out
(spikingjelly MultiStepLIFNode, tau=2, v_reset=0, decay_input) so that no spikingjelly/cupy is needed.

  python3 sdtv2_torch.py parity CKPT INPUT.bin EXPECTED.json    # compare with the reference fixture on cpu and cuda
  python3 sdtv2_torch.py bench --threads 2 --batch 1 --device cpu  # 55M preset, random weights, 224x224, T=4
  python3 sdtv2_torch.py bench --device cuda --model cifar --batch 250 1000 --modes eager fp16 compile compile-fp16
      # GPU: eager fp32 (TF32 off), fp16 autocast, torch.compile fp32 / fp16; random images; one JSON line per case
      # with img/s and peak GPU memory (allocated and reserved by PyTorch's caching allocator); --profile adds
      # each kernel's GPU time per pass on stderr
  python3 sdtv2_torch.py cifar-logits CKPT TEST.bin OUT.json        # CPU logits of the first 256 CIFAR-10 test images
"""
import argparse, json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def lif(x, vth=1.0, rates=None):
    # x: [T, ...]; H = V + (X - V) * 0.5; S = H >= Vth; V = S ? 0 : H
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) * 0.5
        s = (h >= vth).to(x.dtype)
        v = h * (1.0 - s)
        out.append(s)
    s = torch.stack(out)
    if rates is not None:
        rates.append(s.float().mean().item())
    return s


class BNPad(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.bn(x)
        pad = (self.bn.bias - self.bn.running_mean * self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)).view(1, -1, 1, 1)
        y = F.pad(y, [1, 1, 1, 1])
        y[:, :, 0:1, :] = pad
        y[:, :, -1:, :] = pad
        y[:, :, :, 0:1] = pad
        y[:, :, :, -1:] = pad
        return y


class RepConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), BNPad(c),
                                  nn.Sequential(nn.Conv2d(c, c, 3, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)))

    def forward(self, x):
        return self.body(x)


class SepConv(nn.Module):
    def __init__(self, d):
        super().__init__()
        m = 2 * d
        self.pwconv1 = nn.Conv2d(d, m, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(m)
        self.dwconv = nn.Conv2d(m, m, 7, padding=3, groups=m, bias=False)
        self.pwconv2 = nn.Conv2d(m, d, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(d)

    def forward(self, x, r):
        T, B, C, H, W = x.shape
        x = lif(x, rates=r)
        x = self.bn1(self.pwconv1(x.flatten(0, 1))).reshape(T, B, -1, H, W)
        x = lif(x, rates=r)
        x = self.bn2(self.pwconv2(self.dwconv(x.flatten(0, 1)))).reshape(T, B, -1, H, W)
        return x


class ConvBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.Conv = SepConv(d)
        self.conv1 = nn.Conv2d(d, 4 * d, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4 * d)
        self.conv2 = nn.Conv2d(4 * d, d, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(d)

    def forward(self, x, r):
        T, B, C, H, W = x.shape
        x = self.Conv(x, r) + x
        f = x
        x = self.bn1(self.conv1(lif(x, rates=r).flatten(0, 1))).reshape(T, B, 4 * C, H, W)
        x = self.bn2(self.conv2(lif(x, rates=r).flatten(0, 1))).reshape(T, B, C, H, W)
        return f + x


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_conv = nn.Sequential(RepConv(d), nn.BatchNorm2d(d))
        self.k_conv = nn.Sequential(RepConv(d), nn.BatchNorm2d(d))
        self.v_conv = nn.Sequential(RepConv(d), nn.BatchNorm2d(d))
        self.proj_conv = nn.Sequential(RepConv(d), nn.BatchNorm2d(d))

    def forward(self, x, r):
        T, B, C, H, W = x.shape
        N, h = H * W, self.heads
        x = lif(x, rates=r)
        q = self.q_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)
        k = self.k_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)
        v = self.v_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)
        split = lambda s: s.flatten(3).transpose(-1, -2).reshape(T, B, N, h, C // h).permute(0, 1, 3, 2, 4)
        q, k, v = split(lif(q, rates=r)), split(lif(k, rates=r)), split(lif(v, rates=r))
        x = (q @ (k.transpose(-2, -1) @ v)) * 0.125
        x = x.transpose(3, 4).reshape(T, B, C, N)
        x = lif(x, 0.5, rates=r).reshape(T, B, C, H, W)
        return self.proj_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1_conv = nn.Conv1d(d, 4 * d, 1)
        self.fc1_bn = nn.BatchNorm1d(4 * d)
        self.fc2_conv = nn.Conv1d(4 * d, d, 1)
        self.fc2_bn = nn.BatchNorm1d(d)

    def forward(self, x, r):
        T, B, C, H, W = x.shape
        x = lif(x.flatten(3), rates=r)
        x = self.fc1_bn(self.fc1_conv(x.flatten(0, 1))).reshape(T, B, 4 * C, H * W)
        x = lif(x, rates=r)
        return self.fc2_bn(self.fc2_conv(x.flatten(0, 1))).reshape(T, B, C, H, W)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = Attention(d, heads)
        self.mlp = Mlp(d)

    def forward(self, x, r):
        x = x + self.attn(x, r)
        return x + self.mlp(x, r)


class Down(nn.Module):
    def __init__(self, cin, cout, k, s, p, first):
        super().__init__()
        self.first = first
        self.encode_conv = nn.Conv2d(cin, cout, k, s, p)
        self.encode_bn = nn.BatchNorm2d(cout)

    def forward(self, x, r):
        T, B = x.shape[:2]
        if not self.first:
            x = lif(x, rates=r)
        x = self.encode_conv(x.flatten(0, 1))
        return self.encode_bn(x).reshape(T, B, *x.shape[1:])


class SDTv2(nn.Module):
    def __init__(self, dims, classes=1000, heads=8, stem_stride=2, kd=False, T=4):
        super().__init__()
        d0 = dims[0]
        self.T, self.kd = T, kd
        self.downsample1_1 = Down(3, d0 // 2, 7, stem_stride, 3, True)
        self.ConvBlock1_1 = nn.ModuleList([ConvBlock(d0 // 2)])
        self.downsample1_2 = Down(d0 // 2, d0, 3, 2, 1, False)
        self.ConvBlock1_2 = nn.ModuleList([ConvBlock(d0)])
        self.downsample2 = Down(d0, dims[1], 3, 2, 1, False)
        self.ConvBlock2_1 = nn.ModuleList([ConvBlock(dims[1])])
        self.ConvBlock2_2 = nn.ModuleList([ConvBlock(dims[1])])
        self.downsample3 = Down(dims[1], dims[2], 3, 2, 1, False)
        self.block3 = nn.ModuleList([Block(dims[2], heads) for _ in range(6)])
        self.downsample4 = Down(dims[2], dims[3], 3, 1, 1, False)
        self.block4 = nn.ModuleList([Block(dims[3], heads) for _ in range(2)])
        self.head = nn.Linear(dims[3], classes)
        if kd:
            self.head_kd = nn.Linear(dims[3], classes)

    def forward(self, x, rates=None):
        x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        x = self.downsample1_1(x, rates)
        for m in [*self.ConvBlock1_1, self.downsample1_2, *self.ConvBlock1_2, self.downsample2, *self.ConvBlock2_1,
                  *self.ConvBlock2_2, self.downsample3, *self.block3, self.downsample4, *self.block4]:
            x = m(x, rates)
        x = lif(x.flatten(3).mean(3), rates=rates)
        y = self.head(x).mean(0)
        return (y + self.head_kd(x).mean(0)) / 2 if self.kd else y


def parity(args):
    sd = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    sd = sd.get("model", sd)
    exp = json.load(open(args.expected))
    x = torch.from_numpy(__import__("numpy").fromfile(args.input, dtype="<f4").reshape(2, 3, 224, 224).copy())
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for T in (4, 1):
            m = SDTv2([32, 64, 128, 160], kd=True, T=T).eval().to(dev)
            m.load_state_dict(sd)
            rates = []
            with torch.no_grad():
                y = m(x.to(dev), rates).cpu()
            ref = torch.tensor(exp[f"logits_T{T}"])
            rr = torch.tensor(exp[f"lif_rates_T{T}"])
            print(f"{dev} T={T}: max|dlogit| {float((y - ref).abs().max()):.3g}  max|drate| {float((torch.tensor(rates) - rr).abs().max()):.3g}  argmax {y.argmax(1).tolist()} ref {ref.argmax(1).tolist()}", flush=True)


def cifar_logits(args):
    sd = torch.load(args.ckpt, map_location="cpu", weights_only=False)["model"]
    m = SDTv2([32, 64, 128, 192], classes=10, stem_stride=1, T=4).eval()
    m.load_state_dict(sd)
    raw = __import__("numpy").fromfile(args.data, dtype="uint8").reshape(-1, 3073)[:args.count]
    x = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()).float().div(255)
    x = x.sub(torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)).div(torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1))
    with torch.no_grad():
        y = torch.cat([m(x[i:i + 64]) for i in range(0, len(x), 64)])
    json.dump({"source": f"bench/pytorch/sdtv2_torch.py cifar-logits, PyTorch {torch.__version__} CPU, {torch.get_num_threads()} threads, batch 64",
               "logits": y.tolist()}, open(args.out, "w"))
    print("wrote", args.out, tuple(y.shape), flush=True)


MODELS = {  # name: (dims, classes, stem stride, image side)
    "55M": ([128, 256, 512, 640], 1000, 2, 224),
    "cifar": ([32, 64, 128, 192], 10, 1, 32),  # the bundled CIFAR-10 model's architecture
}


def kernel_table(run, x, sync, passes=3):
    """Per-kernel GPU time of a few passes (torch.profiler), ms per pass, largest first, to stderr: PyTorch's side of a
    per-op comparison with `qsvit bench --profile` (the kernels are cuDNN's, cuBLAS's and, compiled, Triton's)."""
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(passes):
            run(x)
        sync()
    rows = [(e.key, e.device_time_total / 1000 / passes, e.count // passes) for e in prof.key_averages() if e.device_time_total > 0]
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    print(f"# kernels of one pass: {total:.3f} ms in {sum(r[2] for r in rows)} launches", file=sys.stderr)
    for name, ms, calls in rows[:60]:
        print(f"{ms:9.3f} ms {100 * ms / total:5.1f} % {calls:5d}x  {name[:150]}", file=sys.stderr)


def bench_case(m, x, mode, seconds, profile=False):
    """img/s of one (model, batch, mode); mode: eager | fp16 (autocast) | compile | compile-fp16."""
    dev = x.device.type
    fp16 = mode.endswith("fp16")
    if mode.startswith("compile"):
        torch._dynamo.reset()  # a fresh static-shape graph per case (else a second batch size compiles a dynamic one)
    run = torch.compile(m) if mode.startswith("compile") else m
    amp = torch.autocast(device_type=dev, dtype=torch.float16, enabled=fp16)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    if dev == "cuda":
        torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), amp:
        t0 = time.time()
        run(x); sync(); run(x); sync()  # warm-up: compile, cuDNN algorithm choice, allocator
        warm = time.time() - t0
        n, t0 = 0, time.time()
        while time.time() - t0 < seconds or n < 3:
            run(x); n += 1
        sync()
        dt = time.time() - t0
        if profile:
            kernel_table(run, x, sync)
    row = {"model": None, "device": dev, "batch": x.shape[0], "mode": mode, "images_per_second": n * x.shape[0] / dt,
           "seconds": dt, "iterations": n, "warmup_seconds": warm}
    if dev == "cuda":
        row["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        row["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
        row["gpu"] = torch.cuda.get_device_name()
    return row


def bench(args):
    torch.set_num_threads(args.threads)
    # fp32 means fp32: no TF32 in cuBLAS or cuDNN (PyTorch's cuDNN default would allow it).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    dims, classes, stride, side = MODELS[args.model]
    torch.manual_seed(0)
    m = SDTv2(dims, classes=classes, stem_stride=stride, T=args.timesteps).eval().to(args.device)
    for b in args.batch:
        x = torch.randn(b, 3, side, side, device=args.device)  # throughput needs no real data
        for mode in args.modes:
            row = bench_case(m, x, mode, args.seconds, args.profile)
            row["model"] = args.model
            row["cudnn_benchmark"] = args.cudnn_benchmark
            row["torch"] = torch.__version__
            print(json.dumps(row), flush=True)
        del x


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("parity"); a.add_argument("ckpt"); a.add_argument("input"); a.add_argument("expected")
    b = sub.add_parser("bench"); b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, nargs="+", default=[1]); b.add_argument("--model", choices=list(MODELS), default="55M")
    b.add_argument("--timesteps", type=int, default=4); b.add_argument("--device", default="cpu")
    b.add_argument("--seconds", type=float, default=20)
    b.add_argument("--modes", nargs="+", choices=["eager", "fp16", "compile", "compile-fp16"], default=["eager"],
                   help="eager fp32, fp16 autocast, torch.compile fp32, torch.compile under fp16 autocast")
    b.add_argument("--profile", action="store_true", help="also print each kernel's GPU time per pass to stderr (torch.profiler)")
    b.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                   help="let cuDNN pick the fastest algorithm per shape (PyTorch's best eager setting)")
    c = sub.add_parser("cifar-logits"); c.add_argument("ckpt"); c.add_argument("data"); c.add_argument("out"); c.add_argument("--count", type=int, default=256)
    args = p.parse_args()
    {"parity": parity, "bench": bench, "cifar-logits": cifar_logits}[args.cmd](args)
