"""Compares qsvit's image-folder preprocessing (its own PIL-exact JPEG decoding, StbImageSharp for PNG, Pillow-exact bicubic resize, center crop) with
torchvision's (PIL/libjpeg-turbo decoding, Resize(256, BICUBIC), CenterCrop(224), ToTensor, Normalize) on real files,
pixel by pixel and by what it does to a model's predictions.

  # here (qsvit): an image set and qsvit's crops of it
  bench/pytorch/make_jpeg_set.sh out/jpeg-set
  dotnet run -c Release --project src/Qsvit.Cli -- bench dump-inputs --data out/jpeg-set --out out/jpeg-set/qsvit_inputs.u8
  # where PyTorch, torchvision and PIL are (e.g. the GPU machine)
  python3 bench/pytorch/jpeg_fidelity.py out/jpeg-set/qsvit_inputs.u8 [--ckpt CKPT --dims 32 64 128 160 --kd] [--json OUT]

The dump (uint8 [N, 3, 224, 224] plus QSVIT.json naming each file) holds qsvit's 8-bit crops before normalization; the
normalization is the same affine map on both sides, so differences in the crops are the whole story. Predictions use
bench/pytorch/sdtv2_torch.py with the given checkpoint (default: the 1000-class parity fixture, random-like weights:
it shows how far logits move, not accuracy), run on torchvision's tensors and on qsvit's.
"""
import argparse, collections, json, os, sys
import numpy as np
import torch
from PIL import Image
import torchvision.transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdtv2_torch as S

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def variant(path):
    """What kind of file an image is, from make_jpeg_set.sh's names (420, 422, 444, progressive, gray, cmyk, png)."""
    name, ext = os.path.splitext(os.path.basename(path))
    return "png" if ext.lower() == ".png" else name.rsplit("_", 1)[-1]


def torchvision_crops(files, resize, crop):
    """torchvision's ImageFolder loader (PIL, convert('RGB')) then Resize and CenterCrop, as uint8 [N, 3, crop, crop]."""
    tf = T.Compose([T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(crop)])
    out = np.zeros((len(files), 3, crop, crop), np.uint8)
    modes = []
    for i, f in enumerate(files):
        with open(f, "rb") as fh:
            img = Image.open(fh)
            modes.append(f"{img.format} {img.mode}" + (" progressive" if img.info.get("progressive") or img.info.get("progression") else ""))
            img = img.convert("RGB")
        out[i] = np.asarray(tf(img), np.uint8).transpose(2, 0, 1)
    return out, modes


def normalize(u8, mean, std):
    x = torch.from_numpy(u8).float().div(255)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dump", help="qsvit's crops (qsvit bench dump-inputs --out FILE); FILE.json beside it")
    p.add_argument("--ckpt", default=os.path.join(REPO, "tests", "fixtures", "parity", "parity_sdtv2_w32-160_kd.pth"))
    p.add_argument("--dims", type=int, nargs=4, default=[32, 64, 128, 160])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--kd", action="store_true", default=None, help="the checkpoint has head_kd (default: when it does)")
    p.add_argument("--timesteps", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--json", help="also write every number to this JSON file")
    a = p.parse_args()

    meta = json.load(open(a.dump + ".json"))
    n, c, h, w = meta["shape"]
    qsvit = np.fromfile(a.dump, np.uint8).reshape(n, c, h, w)
    # Paths are relative to the dump's folder (so the pair can be copied to another machine together).
    files = [os.path.join(os.path.dirname(os.path.abspath(a.dump)), f) for f in meta["files"]]
    errors = {int(k): v for k, v in meta.get("errors", {}).items()}
    ref, modes = torchvision_crops(files, meta["resize_shorter"], meta["crop"])

    # Pixels: qsvit's crop minus torchvision's, in 8-bit levels.
    diff = qsvit.astype(np.int16) - ref.astype(np.int16)
    per_image = []
    for i, f in enumerate(files):
        d = np.abs(diff[i])
        per_image.append({"file": os.path.basename(f), "variant": variant(f), "pil": modes[i], "error": errors.get(i),
                          "max_abs": int(d.max()), "mean_abs": float(d.mean()), "differing": float((d > 0).mean()),
                          "over_2_levels": float((d > 2).mean())})
    print(f"{n} images, {meta['resize_shorter']} -> crop {meta['crop']}; qsvit vs torchvision {T.__name__.split('.')[0]} "
          f"(torch {torch.__version__}, PIL {Image.__version__})")
    if errors:
        print(f"qsvit could not read {len(errors)}: " + "; ".join(f"{os.path.basename(files[i])}: {e}" for i, e in errors.items()))
    print("\nper variant (8-bit levels): images | identical | max |d| | mean |d| | pixels differing | pixels > 2 levels")
    by = collections.defaultdict(list)
    for r in per_image:
        if r["error"] is None:
            by[r["variant"]].append(r)
    for v, rows in sorted(by.items()):
        print(f"  {v:12s} {len(rows):3d} | {sum(r['max_abs'] == 0 for r in rows):3d} | {max(r['max_abs'] for r in rows):3d} | "
              f"{np.mean([r['mean_abs'] for r in rows]):.4f} | {100 * np.mean([r['differing'] for r in rows]):6.2f} % | "
              f"{100 * np.mean([r['over_2_levels'] for r in rows]):6.3f} %")
    ok = [i for i in range(n) if i not in errors]
    hist = np.bincount(np.abs(diff[ok]).ravel(), minlength=256)
    print("  |d| histogram: " + ", ".join(f"{k}: {hist[k]}" for k in range(256) if hist[k]))

    # Predictions: the same model on both tensors.
    sd = torch.load(a.ckpt, map_location="cpu", weights_only=False)
    sd = sd.get("model", sd)
    kd = ("head_kd.weight" in sd) if a.kd is None else a.kd
    model = S.SDTv2(a.dims, classes=a.classes, kd=kd, T=a.timesteps).eval().to(a.device)
    model.load_state_dict(sd)
    xs_q, xs_t = normalize(qsvit[ok], meta["mean"], meta["std"]), normalize(ref[ok], meta["mean"], meta["std"])
    with torch.no_grad():
        lq = torch.cat([model(xs_q[i:i + a.batch].to(a.device)).cpu() for i in range(0, len(ok), a.batch)])
        lt = torch.cat([model(xs_t[i:i + a.batch].to(a.device)).cpu() for i in range(0, len(ok), a.batch)])
    top1_same = (lq.argmax(1) == lt.argmax(1))
    top5_overlap = [len(set(q.tolist()) & set(t.tolist())) / 5 for q, t in zip(lq.topk(5, 1).indices, lt.topk(5, 1).indices)]
    dl = (lq - lt).abs()
    print(f"\npredictions ({os.path.basename(a.ckpt)}, T={a.timesteps}, {a.device}): top-1 same on {int(top1_same.sum())}/{len(ok)}, "
          f"top-5 overlap {100 * np.mean(top5_overlap):.1f} %, max |Δlogit| {float(dl.max()):.4g}, mean |Δlogit| {float(dl.mean()):.4g}")
    for j in (~top1_same).nonzero().flatten().tolist():
        print(f"  top-1 differs: {per_image[ok[j]]['file']} ({per_image[ok[j]]['variant']}): qsvit {int(lq[j].argmax())} vs torchvision {int(lt[j].argmax())}")
    for k, i in enumerate(ok):
        per_image[i].update({"top1_same": bool(top1_same[k]), "top5_overlap": top5_overlap[k], "max_dlogit": float(dl[k].max())})

    if a.json:
        json.dump({"torch": torch.__version__, "pil": Image.__version__, "checkpoint": a.ckpt, "device": a.device,
                   "images": per_image, "abs_diff_histogram": hist.tolist()}, open(a.json, "w"), indent=1)
        print("wrote", a.json)


if __name__ == "__main__":
    main()
