#!/usr/bin/env bash
# Issue 12 on a CPU, in one run: packed models on the integer path against the fp32 simulation of the same codes
# (`qsvit bench --model F.safetensors`, alternating in one process: its packed_speedup is the figure to compare), with the
# 512-bit VNNI tiles and without (QSVIT_VNNI512=0), then PyTorch eager fp32 on the same threads.
#   [VNNI512="1 0"] bench/cpu_packed_side_by_side.sh QSVIT "THREADS..." [SECONDS] PACKED.safetensors...
# QSVIT is a qsvit binary (e.g. a self-contained publish); the 55M preset (random weights, all 4 bits) runs as well.
# VNNI512="1" skips the runs on the other integer paths.
set -u
Q=${1:?usage: cpu_packed_side_by_side.sh QSVIT "THREADS..." [SECONDS] PACKED.safetensors...}
THREADS=${2:?threads, e.g. "2 16"}
S=${3:-4}
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
lscpu | grep -E "Model name|^CPU\(s\)"
grep -o -w "avx512_vnni\|avx_vnni\|amx_int8" /proc/cpuinfo | sort | uniq -c
rates() {  # one line per timed case of a --json bench
    python3 -c '
import json, sys
for c in json.load(sys.stdin):
    if c["images_per_second"]:
        speedup = ", packed_speedup %.3f" % c["packed_speedup"] if "packed_speedup" in c else ""
        print("%s: %.2f img/s%s" % (c["case"], c["images_per_second"], speedup))'
}
for T in $THREADS; do
    for v in ${VNNI512:-1 0}; do
        for f in "$@"; do
            echo "## threads $T, QSVIT_VNNI512=$v, $f"
            QSVIT_VNNI512=$v "$Q" bench --model "$f" --device cpu --threads "$T" --batch 32 --seconds "$S" --json 2>/dev/null | rates
        done
        echo "## threads $T, QSVIT_VNNI512=$v, 55M all 4"
        QSVIT_VNNI512=$v "$Q" bench --cases 55M --setting 4 --device cpu --threads "$T" --batch 1 --seconds "$S" --json 2>/dev/null | rates
    done
    python3 "$HERE/pytorch/sdtv2_torch.py" bench --device cpu --threads "$T" --model cifar --batch 32 --seconds "$S" --modes eager 2>&1 | grep '^{'
    python3 "$HERE/pytorch/sdtv2_torch.py" bench --device cpu --threads "$T" --model 55M --batch 1 --seconds "$S" --modes eager 2>&1 | grep '^{'
done
