#!/usr/bin/env bash
# Issue 10's side-by-side on one GPU, in one run: qsvit `bench --device cuda` and PyTorch (eager fp32 with TF32 off,
# fp16 autocast, torch.compile fp32 / fp16) on the bundled CIFAR model (batch 250, 1000) and the 55M preset (32, 64).
#   bench/gpu_side_by_side.sh QSVIT [SECONDS] [CIFAR_TORCH_MODES] [55M_TORCH_MODES]
# QSVIT is a qsvit binary (e.g. a self-contained publish); run from the repository root (bundled model in models/).
# qsvit's peak GPU memory is the device's used memory sampled by nvidia-smi every 100 ms (CUDA context included), one
# process per case; PyTorch prints its caching allocator's peaks per case.
set -u
Q=${1:?usage: gpu_side_by_side.sh QSVIT [SECONDS] [CIFAR_TORCH_MODES] [55M_TORCH_MODES]}
S=${2:-3}
CIFAR_MODES=${3:-"eager fp16 compile compile-fp16"}
BIG_MODES=${4:-"eager fp16"}
HERE=$(cd "$(dirname "$0")" && pwd)
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
qsvit_case() {  # case batch
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/qsvit_mem.txt &
    local sampler=$!
    "$Q" bench --device cuda --cases "$1" --batch "$2" --seconds "$S" --json
    kill "$sampler"; wait "$sampler" 2>/dev/null
    echo "{\"qsvit_case\": \"$1\", \"batch\": $2, \"peak_device_memory_used_mib\": $(sort -n /tmp/qsvit_mem.txt | tail -1)}"
}
for b in 250 1000; do qsvit_case bundled $b; done
for b in 32 64; do qsvit_case 55M $b; done
python3 "$HERE/pytorch/sdtv2_torch.py" bench --device cuda --model cifar --batch 250 1000 --modes $CIFAR_MODES --seconds "$S" 2>&1 | grep '^{'
python3 "$HERE/pytorch/sdtv2_torch.py" bench --device cuda --model 55M --batch 32 64 --modes $BIG_MODES --seconds "$S" 2>&1 | grep '^{'
