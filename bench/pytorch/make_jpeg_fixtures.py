"""Reference decodes for qsvit's JPEG decoder (tests/fixtures/jpeg). Synthesises small images (gradients, noise, text,
lines; odd sizes), encodes them with PIL in many variants (quality 5-100, 4:4:4/4:2:2/4:2:0, baseline/progressive,
optimized tables, restart markers by blocks and rows, grayscale, Adobe CMYK, RGB), decodes each with PIL's
Image.open(f).convert('RGB'), and writes the .jpg files, PIL's raw RGB (.rgb) and manifest.json (SHA-256 of each) into
$OUT/fixtures.tar.gz. It also decodes EXTRA/*.jpg, files PIL cannot write (YCCK, 4:4:0, 4:1:1, 3:1, mixed factors,
tiny planes), made with the system libjpeg by bench/pytorch/jpeg_test_encoder.c, and records the SHA-256 and per-row
CRC-32 of PIL's RGB for every file of PHOTOS (bench/pytorch/make_jpeg_set.sh's set).

  # where libjpeg's headers are (here):
  gcc -O2 -o enc bench/pytorch/jpeg_test_encoder.c -ljpeg -lm    # then e.g. ./enc 61 45 ycck "" 90 0 0 extra/ycck.jpg
  # where PIL is (the GPU machine):
  OUT=out python3 bench/pytorch/make_jpeg_fixtures.py [EXTRA_DIR] [PHOTOS_DIR]
"""
import io, os, sys, json, tarfile, zlib, hashlib, glob
import numpy as np
from PIL import Image, ImageDraw, features

OUT = os.environ.get("OUT", "out")
EXTRA = sys.argv[1] if len(sys.argv) > 1 else "extra"
PHOTOS = sys.argv[2] if len(sys.argv) > 2 else os.path.join("jpeg-set", "photos")
rng = np.random.default_rng(8)

def natural(w, h, seed):
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, p = r.uniform(-3, 3, 3)
        img[..., c] = 128 + 90 * np.sin(a * x / max(w, 1) * 3.1 + b * y / max(h, 1) * 2.3 + p)
    img += r.normal(0, 12, img.shape)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    for i in range(max(1, (w * h) // 1500)):
        x0, y0 = int(r.integers(0, w)), int(r.integers(0, h))
        col = tuple(int(v) for v in r.integers(0, 256, 3))
        if i % 3 == 0: d.rectangle([x0, y0, x0 + int(r.integers(1, 30)), y0 + int(r.integers(1, 20))], fill=col)
        elif i % 3 == 1: d.text((x0, y0), "Qsvit 8", fill=col)
        else: d.line([x0, y0, int(r.integers(0, w)), int(r.integers(0, h))], fill=col, width=int(r.integers(1, 4)))
    return im

cases = []
sizes = [(37, 23), (64, 48), (161, 97), (250, 131), (16, 16), (1, 1), (9, 17), (130, 7), (7, 130)]
k = 0
for si, (w, h) in enumerate(sizes):
    im = natural(w, h, si)
    for q in (75, 95):
        for sub in (0, 1, 2):
            if (k % 2 == 0) or (w, h) in [(37, 23), (161, 97), (250, 131)]:
                prog = (k % 3 == 1); opt = (k % 4 == 2)
                cases.append((f"s{w}x{h}_q{q}_sub{sub}{'_prog' if prog else ''}{'_opt' if opt else ''}", im,
                              dict(quality=q, subsampling=sub, progressive=prog, optimize=opt)))
            k += 1
# restart markers, both styles, baseline and progressive
im = natural(161, 97, 50)
for extra in (dict(restart_marker_blocks=1), dict(restart_marker_blocks=5), dict(restart_marker_rows=1), dict(restart_marker_rows=2)):
    for prog in (False, True):
        tag = "_".join(f"{a}{b}" for a, b in extra.items())
        cases.append((f"rst_{tag}{'_prog' if prog else ''}_sub2", im, dict(quality=85, subsampling=2, progressive=prog, **extra)))
cases.append(("rst_blocks3_sub0", natural(250, 131, 51), dict(quality=90, subsampling=0, restart_marker_blocks=3)))
# grayscale
for (w, h), prog in (((37, 23), False), ((161, 97), True), ((250, 131), False)):
    cases.append((f"gray_{w}x{h}{'_prog' if prog else ''}", natural(w, h, 60 + w).convert("L"), dict(quality=85, progressive=prog)))
# CMYK (PIL writes Adobe, inverted)
for (w, h), prog in (((37, 23), False), ((161, 97), True), ((64, 48), False)):
    cases.append((f"cmyk_{w}x{h}{'_prog' if prog else ''}", natural(w, h, 70 + w).convert("CMYK"), dict(quality=90, progressive=prog)))
# RGB without YCbCr (Adobe transform 0)
cases.append(("rgb_keep_64x48", natural(64, 48, 80), dict(quality=90, keep_rgb=True)))
# high quality, extremes
cases.append(("q100_sub0_161x97", natural(161, 97, 90), dict(quality=100, subsampling=0)))
cases.append(("q100_sub2_161x97_prog", natural(161, 97, 91), dict(quality=100, subsampling=2, progressive=True)))
cases.append(("q5_sub2_64x48", natural(64, 48, 92), dict(quality=5, subsampling=2)))
sat = Image.fromarray(np.where(rng.random((48, 64, 3)) > 0.5, 255, 0).astype(np.uint8), "RGB")
cases.append(("saturated_q95_sub2", sat, dict(quality=95, subsampling=2)))
cases.append(("saturated_q95_sub1_prog", sat, dict(quality=95, subsampling=1, progressive=True)))

manifest = {"pil": Image.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"), "files": {}}
tf = tarfile.open(os.path.join(OUT, "fixtures.tar.gz"), "w:gz")
def add(name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
def decode(data):
    img = Image.open(io.BytesIO(data)); mode = img.mode
    return img.convert("RGB"), mode
for name, im, kw in cases:
    buf = io.BytesIO()
    try:
        im.save(buf, "JPEG", **kw)
    except Exception as e:
        print("skip", name, kw, e); continue
    data = buf.getvalue()
    rgb, mode = decode(data)
    raw = rgb.tobytes()
    add(f"fixtures/{name}.jpg", data); add(f"fixtures/{name}.rgb", raw)
    manifest["files"][name] = {"w": rgb.width, "h": rgb.height, "mode": mode, "sha256": hashlib.sha256(raw).hexdigest(), "kw": {a: str(b) for a, b in kw.items()}}
for f in sorted(glob.glob(os.path.join(EXTRA, "*.jpg"))):
    data = open(f, "rb").read(); name = "x_" + os.path.splitext(os.path.basename(f))[0]
    try:
        rgb, mode = decode(data)
    except Exception as e:
        print("extra fail", f, e); continue
    raw = rgb.tobytes()
    add(f"fixtures/{name}.jpg", data); add(f"fixtures/{name}.rgb", raw)
    manifest["files"][name] = {"w": rgb.width, "h": rgb.height, "mode": mode, "sha256": hashlib.sha256(raw).hexdigest()}
photos = {}
for f in sorted(glob.glob(os.path.join(PHOTOS, "*"))):
    try:
        img = Image.open(f); mode = img.mode; rgb = img.convert("RGB")
    except Exception as e:
        print("photo fail", f, e); continue
    a = np.asarray(rgb)
    photos[os.path.basename(f)] = {"w": rgb.width, "h": rgb.height, "mode": mode, "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
                                   "rows": [zlib.crc32(a[i].tobytes()) for i in range(a.shape[0])]}
manifest["photos"] = photos
add("fixtures/manifest.json", json.dumps(manifest, indent=1).encode())
tf.close()
print(len(manifest["files"]), "fixtures,", len(photos), "photos; PIL", Image.__version__, "libjpeg-turbo", manifest["libjpeg_turbo"])
print("archive", os.path.getsize(os.path.join(OUT, "fixtures.tar.gz")), "bytes")
