"""Finds the float32 summation order PyTorch's CPU convolutions (oneDNN) use, so that qsvit can reproduce the
reference fixture bit for bit where a membrane potential lands within a few ulps of a threshold.

  python3 order_probe.py CKPT INPUT.bin OUT_DIR

For every conv of the parity model at T=4 it samples outputs and recomputes each from the layer's own input under
candidate orders of the (ic, ky, kx) reduction, with fused (FMA) or separate multiply-add and with the bias added
first or last, and reports which candidate reproduces PyTorch bit for bit. It does the same for eval BatchNorm and the
head's spatial mean, and lists every LIF potential within 1e-5 of its threshold.
"""
import json, os, sys
import numpy as np
import torch
import sdtv2_torch as S

f32, f64 = np.float32, np.float64
rng = np.random.default_rng(0)
results = {"conv": [], "bn": [], "near_threshold": []}


def blocked_orders(icg, kh, kw):
    """(name, blocks): ic split into blocks of B channels, each block summed in (ky, kx, ic) order."""
    idx = np.arange(icg * kh * kw).reshape(icg, kh, kw)
    out = [("ic,ky,kx seq", [idx.reshape(-1)])]
    sizes = list(range(16, icg + 1, 16)) if kh * kw == 1 else []
    for b in sorted(set((8, 16, 32, 64, 128, 256, icg, *sizes))):
        if b > icg or (b == icg and any(n.startswith(f"icb{icg}:") for n, _ in out)):
            continue
        name = f"icb{b}:ky,kx,ic"
        if any(n == name for n, _ in out):
            continue
        out.append((name, [idx[s:s + b].transpose(1, 2, 0).reshape(-1) for s in range(0, icg, b)]))
    return out


def replay(prod64, blocks, bias, bias_mode, combine):
    out = None
    for bi, blk in enumerate(blocks):
        if combine == "chain" and bi > 0:
            acc = out
        elif bias is not None and bias_mode == "init" and bi == 0:
            acc = bias.copy()
        else:
            acc = np.zeros(prod64.shape[0], f32)
        for k in blk:
            acc = (acc.astype(f64) + prod64[:, k]).astype(f32)
        out = acc if (combine == "chain" or bi == 0) else (out + acc).astype(f32)
        if bi == 0 and bias is not None and bias_mode == "after_first":
            out = (out + bias).astype(f32)
    if bias is not None and bias_mode == "end":
        out = (out + bias).astype(f32)
    return out


seen = {}


probing = [True]


def probe_conv(name, mod, x, y):
    if not probing[0]:
        return
    x = x.detach().numpy(); y = y.detach().numpy()
    w = mod.weight.detach().numpy()
    if x.ndim == 3:
        x, y, w = x[:, :, None, :], y[:, :, None, :], w[:, :, None, :]
    st = mod.stride if len(mod.stride) == 2 else (1, mod.stride[0])
    pd = mod.padding if len(mod.padding) == 2 else (0, mod.padding[0])
    g = mod.groups
    n, c, h, wd = x.shape
    oc, icg, kh, kw = w.shape
    spikes = bool(np.all((x == 0) | (x == 1)))
    if os.environ.get("PROBE_ONLY_1X1") and (kh * kw != 1 or h * wd > 196):
        return
    sig = (c, oc, icg, kh, kw, st, pd, g, h, wd, mod.bias is not None, spikes)
    if sig in seen:
        results["conv"].append({"name": name, "same_as": seen[sig]})
        return
    seen[sig] = name
    s = 3000
    ni = rng.integers(0, n, s); oi = rng.integers(0, oc, s)
    yi = rng.integers(0, y.shape[2], s); xi = rng.integers(0, y.shape[3], s)
    xp = np.pad(x, ((0, 0), (0, 0), (pd[0], pd[0]), (pd[1], pd[1])))
    grp = oi // (oc // g)
    ci = grp[:, None, None, None] * icg + np.arange(icg)[None, :, None, None]
    ry = yi[:, None, None, None] * st[0] + np.arange(kh)[None, None, :, None]
    rx = xi[:, None, None, None] * st[1] + np.arange(kw)[None, None, None, :]
    patch = xp[ni[:, None, None, None], ci, ry, rx].reshape(s, -1)
    wt = w[oi].reshape(s, -1)
    prod64 = patch.astype(f64) * wt.astype(f64)
    ref = y[ni, oi, yi, xi]
    bias = None if mod.bias is None else mod.bias.detach().numpy()[oi]
    scores = {}
    for oname, blocks in blocked_orders(icg, kh, kw):
        for combine in (("chain", "add") if len(blocks) > 1 else ("chain",)):
            for bias_mode in (("init", "after_first", "end") if bias is not None else ("none",)):
                got = replay(prod64, blocks, bias, bias_mode, combine)
                scores[f"{oname} {combine} bias:{bias_mode}"] = float(np.mean(got.view(np.int32) == ref.view(np.int32)))
    best = sorted(scores.items(), key=lambda kv: -kv[1])
    rec = {"name": name, "in": [n, c, h, wd], "out_channels": oc, "kernel": [kh, kw], "stride": list(st), "pad": list(pd),
           "groups": g, "bias": mod.bias is not None, "spike_input": spikes, "best": best[:4]}
    results["conv"].append(rec)
    print(f"{name:40s} ic={c:4d} oc={oc:4d} k={kh}x{kw} s={st[0]} g={g:4d} hw={h}x{wd} spikes={spikes} "
          + " | ".join(f"{k} {v:.4f}" for k, v in best[:3]), flush=True)


def probe_bn(name, mod, x, y):
    if not probing[0]:
        return
    x = x.detach().numpy(); y = y.detach().numpy()
    shape = [1, -1] + [1] * (x.ndim - 2)
    w, b = mod.weight.detach().numpy(), mod.bias.detach().numpy()
    m, v = mod.running_mean.numpy(), mod.running_var.numpy()
    inv = (f32(1) / np.sqrt(v + f32(mod.eps))).astype(f32)
    alpha = (inv * w).astype(f32)
    beta2 = (b - (m * alpha).astype(f32)).astype(f32)
    beta1 = (b.astype(f64) - m.astype(f64) * alpha.astype(f64)).astype(f32)
    a = alpha.reshape(shape)
    cands = {}
    for bn_, beta in (("beta=b-m*a", beta2), ("beta=fma", beta1)):
        bb = beta.reshape(shape)
        cands[f"{bn_} y=x*a+b"] = (x * a).astype(f32) + bb
        cands[f"{bn_} y=fma"] = (x.astype(f64) * a + bb).astype(f32)
    sc = {k: float(np.mean(c.astype(f32).view(np.int32) == y.view(np.int32))) for k, c in cands.items()}
    results["bn"].append({"name": name, "scores": sc})
    if len(results["bn"]) <= 3 or max(sc.values()) < 1:
        print(f"BN {name:37s} " + " | ".join(f"{k} {v:.5f}" for k, v in sc.items()), flush=True)


orig_lif = S.lif
lif_index = [0]


def lif_probe(x, vth=1.0, rates=None):
    v = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        hcur = v + (x[t] - v) * 0.5
        margin = (hcur - vth).abs()
        close = margin < 1e-5
        if close.any():
            for i in close.nonzero()[:20].tolist():
                results["near_threshold"].append({"lif": lif_index[0], "t": t, "index": i, "h": float(hcur[tuple(i)]), "vth": vth,
                                                  "ulps": float(margin[tuple(i)] / (np.spacing(f32(vth))))})
        s = (hcur >= vth).to(x.dtype)
        v = hcur * (1.0 - s)
    lif_index[0] += 1
    return orig_lif(x, vth, rates)


def cifar_batch(path, start, count):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)[start:start + count]
    x = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()).float().div(255)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    return x.sub(mean).div(std)


def main():
    ckpt, inp, outdir = sys.argv[1:4]
    sd = torch.load(ckpt, map_location="cpu", weights_only=False)
    sd = sd.get("model", sd)
    print(torch.__version__, torch.get_num_threads(), "threads", flush=True)
    cifar = os.environ.get("CIFAR_EXPECTED")
    if cifar:
        m = S.SDTv2([32, 64, 128, 192], classes=10, stem_stride=1, T=4).eval()
        m.load_state_dict(sd)
        exp = torch.tensor(json.load(open(cifar))["test_logits_first256"])
        probing[0] = False
        with torch.no_grad():
            for bs in (1, 16, 32, 64, 128, 256):
                y = torch.cat([m(cifar_batch(inp, s, bs)) for s in range(0, 256, bs)])
                d = (y - exp).abs()
                print(f"cifar batch {bs}: max |dlogit| {float(d.max()):.3g}, exact rows {int((d.max(1).values == 0).sum())}/256", flush=True)
        probing[0] = True
        x = cifar_batch(inp, 0, 64)
    else:
        x = torch.from_numpy(np.fromfile(inp, dtype="<f4").reshape(2, 3, 224, 224).copy())
        m = S.SDTv2([32, 64, 128, 160], kd=True, T=4).eval()
        m.load_state_dict(sd)
    feats = {}
    for name, mod in m.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Conv1d)):
            mod.register_forward_hook(lambda mod, i, o, name=name: probe_conv(name, mod, i[0], o))
        elif isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            mod.register_forward_hook(lambda mod, i, o, name=name: probe_bn(name, mod, i[0], o))
    m.block4[-1].register_forward_hook(lambda mod, i, o: feats.__setitem__("last", o.detach()))
    S.lif = lif_probe
    with torch.no_grad():
        logits = m(x)
    if not cifar:
        exp = json.load(open(inp.replace("parity_input_2x3x224x224_f32.bin", "parity_expected.json")))
        print("max |dlogit| vs fixture", float((logits - torch.tensor(exp["logits_T4"])).abs().max()), flush=True)
    # The head's spatial mean.
    z = feats["last"].flatten(3)
    ref = z.mean(3).numpy(); zn = z.numpy(); nn_ = zn.shape[-1]
    seq = np.zeros(zn.shape[:-1], f32)
    for i in range(nn_):
        seq = (seq + zn[..., i]).astype(f32)
    cands = {"seq/N": (seq / f32(nn_)).astype(f32), "seq*(1/N)": (seq * (f32(1) / f32(nn_))).astype(f32),
             "f64 sum/N": (zn.astype(f64).sum(-1) / nn_).astype(f32), "np.mean": zn.mean(-1, dtype=f32)}
    results["mean"] = {k: float(np.mean(c.view(np.int32) == ref.view(np.int32))) for k, c in cands.items()}
    print("mean", results["mean"], flush=True)
    print("near-threshold LIF potentials:", len(results["near_threshold"]), flush=True)
    json.dump(results, open(f"{outdir}/probe.json", "w"), indent=1)


if __name__ == "__main__":
    main()
