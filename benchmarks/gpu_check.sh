#!/usr/bin/env bash
# What only a GPU can show (CI has no GPU), in one go or by part:
#   throughput  the paper's backbones at their real input sizes: clips/s and peak memory of
#               forward (export) and training steps, fp32 against bf16 / fp16 autocast;
#   tests       the test suite with CUDA visible (tests/extract/test_cuda.py runs instead of
#               skipping, and every device=auto path takes the GPU);
#   end-to-end  a real training config, mvit-b-16x4_charades.yaml (AdaptFocus, bf16 autocast,
#               8 loader workers), for a few epochs on a small synthetic set, then its export.
# Usage: bash benchmarks/gpu_check.sh OUT_DIR [PART ...]     (default: all three parts)
# python3 must import torch with CUDA and this project's dependencies; run from the repo root.
set -u -o pipefail
out=${1:?usage: gpu_check.sh OUT_DIR [throughput] [tests] [end-to-end]}
shift
parts=${*:-throughput tests end-to-end}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
run="python3 -m pipelines.main"

throughput() {
  timeout 240 python3 benchmarks/backbone_throughput.py --device cuda --modes forward train \
      --precisions fp32 bf16 fp16 --backbones i3d-inception i3d-r50 slowfast-r50 x3d-m \
      mvit-b-16x4 --batch 8 --warmup 3 --repeats 10 --json "$out/throughput.json" \
      2>&1 | tee "$out/throughput.txt"
}

tests() {
  timeout 240 python3 -m pytest -q -n 8 -p no:cacheprovider --tb=short tests 2>&1 \
      | tee "$out/pytest.txt" | tail -15
}

end-to-end() {
  local work start
  work=$(mktemp -d)
  start=$(date +%s)
  { $run data synth --preset demo --set 'videos_per_split=[16,2,8]' --out "$work/data" \
        --no-progress \
    && timeout 200 $run extract train \
        --config extract/training/configs/mvit-b-16x4_charades.yaml \
        --set data.manifest="$work/data" --set model.pretrained=null --set train.epochs=4 \
        --set optim.warmup_steps=0 --set eval.views_t=2 --set eval.views_s=1 \
        --out "$work/run" \
    && timeout 100 $run extract features --run "$work/run" --manifest "$work/data" \
        --store "$work/features.zarr" \
    && $run extract inspect "$work/features.zarr"; } 2>&1 | tr '\r' '\n' \
      | grep -v "it/s\]" | tail -40 | tee "$out/end_to_end.txt"
  echo "end to end: $(( $(date +%s) - start )) s" | tee -a "$out/end_to_end.txt"
  cp "$work/run/metrics.jsonl" "$out/end_to_end_metrics.jsonl" 2>/dev/null || true
}

{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__)"; } \
    | tee "$out/gpu.txt"
for part in $parts; do
  "$part"
done
