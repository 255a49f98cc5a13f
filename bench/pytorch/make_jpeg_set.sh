#!/usr/bin/env bash
# Builds the small image set for jpeg_fidelity.py from photographs in a Debian package (scikit-image's sample data:
# astronaut, cat, coffee, rocket, motorcycles, retina, Hubble field, camera man, moon…), re-encoded with ImageMagick
# (libjpeg-turbo) into the variants qsvit's decoder must match PIL on: 4:2:0, 4:2:2 and 4:4:4 chroma subsampling,
# baseline and progressive, grayscale and CMYK JPEGs, PNG, at several sizes. About 3 MB; nothing is committed.
#
#   bench/pytorch/make_jpeg_set.sh [OUT_DIR]        # default out/jpeg-set (git-ignored); needs apt-get download and convert
#
# The result is an image folder with one class, OUT_DIR/photos/<image>, as qsvit and torchvision's ImageFolder read it.
set -euo pipefail
out="${1:-out/jpeg-set}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download python3-skimage >/dev/null)
dpkg -x "$work"/python3-skimage_*.deb "$work/x"
src="$work/x/usr/lib/python3/dist-packages/skimage/data"
rm -rf "$out" && mkdir -p "$out/photos"
dst="$out/photos"

i=0
for name in astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png motorcycle_right.png retina.jpg \
            hubble_deep_field.jpg ihc.png camera.png moon.png brick.png grass.png coins.png; do
    [ -f "$src/$name" ] || continue
    base="${name%.*}"
    # Several sizes: the longest side at 1.0x, and scaled so the shorter side is below, near and above 256.
    case $((i % 4)) in
        0) size="100%";; 1) size="200x200^";; 2) size="300x300^";; 3) size="640x640^";;
    esac
    convert "$src/$name" -resize "$size" -strip "$work/$base.ppm" 2>/dev/null || convert "$src/$name" -resize "$size" "$work/$base.ppm"
    convert "$work/$base.ppm" -quality 90 -sampling-factor 2x2,1x1,1x1 "$dst/${base}_420.jpg"
    convert "$work/$base.ppm" -quality 92 -sampling-factor 2x1,1x1,1x1 "$dst/${base}_422.jpg"
    convert "$work/$base.ppm" -quality 95 -sampling-factor 1x1,1x1,1x1 "$dst/${base}_444.jpg"
    convert "$work/$base.ppm" -quality 85 -sampling-factor 2x2,1x1,1x1 -interlace Plane "$dst/${base}_progressive.jpg"
    case $((i % 3)) in
        0) convert "$work/$base.ppm" -colorspace Gray -quality 90 "$dst/${base}_gray.jpg";;
        1) convert "$work/$base.ppm" -colorspace CMYK -quality 90 "$dst/${base}_cmyk.jpg";;
        2) convert "$work/$base.ppm" "$dst/${base}.png";;
    esac
    i=$((i + 1))
done
ls "$dst" | wc -l | xargs echo "images:"
du -sh "$out"
