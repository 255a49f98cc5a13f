#!/usr/bin/env python3
"""Runs a qsvit ONNX export in Python ONNX Runtime (and TensorRT, where installed) on CIFAR-10 binary records and compares
the logits with `qsvit eval --predictions` (JSON Lines) for the same records.

  python3 bench/onnx/ort_check.py --onnx sdtv2_fp32.onnx --predictions qsvit.jsonl --data data/cifar10/test.bin --limit 256
  python3 bench/onnx/ort_check.py ... --providers cpu cuda --trt     # also ORT's CUDA provider and a TensorRT engine

Images are normalized as qsvit does, in float32: (x / 255 - mean) / std with mean/std from the export's `qsvit.model`
metadata. Prints per runtime: max |Δlogit|, identical argmax, top-1; then a short table. Exit 1 when a runtime agrees on
fewer than --min-agree of the images.
"""
import argparse, json, sys, time

import numpy as np
import onnxruntime as ort

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "trt": "TensorrtExecutionProvider"}


def load_cifar(path, limit, mean, std, h, w):
    raw = np.fromfile(path, dtype=np.uint8)
    rec = 1 + 3 * h * w
    n = raw.size // rec if limit is None else min(limit, raw.size // rec)
    raw = raw[: n * rec].reshape(n, rec)
    labels = raw[:, 0].astype(np.int64)
    x = raw[:, 1:].reshape(n, 3, h, w).astype(np.float32)
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    x = (x / np.float32(255.0) - m) / s    # float32 in qsvit's order (PixelNormalizer)
    return np.ascontiguousarray(x, dtype=np.float32), labels


def load_predictions(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows.sort(key=lambda r: r["index"])
    return np.asarray([r["logits"] for r in rows], np.float32), np.asarray([r["label"] for r in rows])


def run_ort(model, x, provider, batch):
    so = ort.SessionOptions()
    sess = ort.InferenceSession(model, so, providers=[provider])
    if sess.get_providers()[0] != provider:
        raise RuntimeError(f"{provider} not taken (got {sess.get_providers()})")
    out = [sess.run(["logits"], {"images": x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    t = time.perf_counter()
    for i in range(0, len(x), batch):
        sess.run(["logits"], {"images": x[i:i + batch]})
    return np.concatenate(out), len(x) / (time.perf_counter() - t)


def run_tensorrt(model, x, batch, classes):
    """Builds an fp32 engine (TF32 off; strongly typed for QDQ exports) with the TensorRT Python API and runs it through torch."""
    import tensorrt as trt
    import torch
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    quantized = b"DequantizeLinear" in open(model, "rb").read()
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if quantized else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(model):
        raise RuntimeError("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    config = builder.create_builder_config()
    if not quantized:
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    shape = tuple(x.shape[1:])
    profile.set_shape("images", (1,) + shape, (batch,) + shape, (batch,) + shape)
    config.add_optimization_profile(profile)
    t = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT could not build the engine (see the log above)")
    build_s = time.perf_counter() - t
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    ctx = engine.create_execution_context()
    stream = torch.cuda.current_stream()   # the stream torch's copies run on
    out = []

    def infer(xb):
        xi = torch.from_numpy(xb).cuda()
        yo = torch.empty((len(xb), classes), dtype=torch.float32, device="cuda")
        ctx.set_input_shape("images", tuple(xi.shape))
        ctx.set_tensor_address("images", xi.data_ptr())
        ctx.set_tensor_address("logits", yo.data_ptr())
        ctx.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return yo.cpu().numpy()

    for i in range(0, len(x), batch):
        out.append(infer(x[i:i + batch]))
    t = time.perf_counter()
    for i in range(0, len(x), batch):
        infer(x[i:i + batch])
    return np.concatenate(out), len(x) / (time.perf_counter() - t), build_s, plan.nbytes


def compare(name, ref, got, labels):
    d = np.abs(ref - got).max(axis=1)
    same = int((ref.argmax(1) == got.argmax(1)).sum())
    top1 = float((got.argmax(1) == labels).mean() * 100)
    print(f"{name}: max |Δlogit| {d.max():.4g}, identical argmax {same}/{len(ref)}, "
          f"{int((d > 1e-3).sum())} images with a logit moved > 1e-3, top-1 {top1:.2f} %")
    return d.max(), same, top1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--predictions", required=True, help="qsvit eval --predictions output for the same records")
    ap.add_argument("--data", required=True, help="CIFAR-10 binary file (label byte + 3072 pixel bytes per record)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--providers", nargs="*", default=["cpu"], choices=sorted(PROVIDERS), help="ONNX Runtime providers (none: only --trt)")
    ap.add_argument("--trt", action="store_true", help="also build and run a TensorRT engine (Python tensorrt + torch)")
    ap.add_argument("--min-agree", type=float, default=0.99)
    a = ap.parse_args()

    meta = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    desc = json.loads(meta["qsvit.model"])
    inp = desc.get("input", {})
    h, w = inp.get("height", 32), inp.get("width", 32)
    ref, ref_labels = load_predictions(a.predictions)
    x, labels = load_cifar(a.data, a.limit if a.limit else len(ref), inp["mean"], inp["std"], h, w)
    if len(x) != len(ref) or not np.array_equal(labels, ref_labels):
        sys.exit(f"{a.predictions} holds {len(ref)} records whose labels do not match the first {len(x)} of {a.data}")
    print(f"{a.onnx}: setting {meta.get('qsvit.setting')}, quantizer {meta.get('qsvit.quantizer')}, "
          f"batchnorm {meta.get('qsvit.batchnorm', '?')}; {len(x)} images; onnxruntime {ort.__version__} "
          f"({', '.join(ort.get_available_providers())})")
    print(f"qsvit (--predictions): top-1 {(ref.argmax(1) == labels).mean() * 100:.2f} %")
    rows, ok = [], True
    for p in a.providers:
        try:
            got, ips = run_ort(a.onnx, x, PROVIDERS[p], a.batch)
        except Exception as e:   # a provider this machine lacks is reported, not fatal
            print(f"ORT {p}: not run: {e}")
            rows.append((f"ORT {p}", "not run", "", "", ""))
            continue
        m, same, top1 = compare(f"ORT {p}", ref, got, labels)
        ok &= same >= a.min_agree * len(x)
        rows.append((f"ORT {p}", f"{m:.4g}", f"{same}/{len(x)}", f"{top1:.2f}", f"{ips:,.0f}"))
    if a.trt:
        try:
            import tensorrt
            got, ips, build_s, size = run_tensorrt(a.onnx, x, a.batch, ref.shape[1])
            print(f"TensorRT {tensorrt.__version__}: engine built in {build_s:.1f} s, {size:,} bytes")
            m, same, top1 = compare(f"TensorRT {tensorrt.__version__}", ref, got, labels)
            ok &= same >= a.min_agree * len(x)
            rows.append((f"TensorRT {tensorrt.__version__}", f"{m:.4g}", f"{same}/{len(x)}", f"{top1:.2f}", f"{ips:,.0f}"))
        except ImportError:
            print("TensorRT: not installed (python3 -c 'import tensorrt' fails)")
            rows.append(("TensorRT", "not installed", "", "", ""))
        except Exception as e:
            print(f"TensorRT: failed: {e}")
            rows.append(("TensorRT", "failed", "", "", ""))
    print(f"\n| runtime | max abs dlogit | identical argmax | top-1 % | img/s (batch {a.batch}) |\n|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
