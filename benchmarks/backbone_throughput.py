"""Throughput (clips/s) and peak GPU memory of backbones: forward (export) and training steps.

    # CPU, the tiny backbones (the number the report quotes)
    .venv/bin/python benchmarks/backbone_throughput.py --backbones x3d-tiny mvit-tiny \
        --batch 8 --threads 1
    # GPU, the paper's backbones at their real input sizes, fp32 against bf16 / fp16 autocast
    python benchmarks/backbone_throughput.py --device cuda --modes forward train \
        --precisions fp32 bf16 fp16 --backbones i3d-inception i3d-r50 slowfast-r50 x3d-m \
        mvit-b-16x4 --batch 8 --json gpu_throughput.json

Input: random clips at the backbone's own InputSpec size (i3d-inception: 64 x 224 x 224). Forward
runs in eval mode under inference_mode (what the feature export does). A training step is what
`extract train` does per batch: autocast forward, BCE on multi-hot labels, backward (through a
GradScaler for fp16), AdamW step. Each number is the median of `--repeats` timed batches after
`--warmup` untimed ones; on CUDA every timed batch ends with a synchronize.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from extract.backbones import build_backbone

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, *, mode: str, precision: str, device: torch.device, batch: int,
            warmup: int, repeats: int) -> dict:
    """Clips/s (and peak GPU memory) of one backbone, mode and precision."""
    torch.manual_seed(0)
    model = build_backbone(name, num_classes=157).to(device)
    spec = model.input_spec
    clips = torch.randn(batch, 3, spec.num_frames, spec.crop_size, spec.crop_size, device=device)
    labels = (torch.rand(batch, 157, device=device) < 0.05).float()
    dtype = DTYPES[precision]
    autocast = torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
    if mode == "train":
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    else:
        model.eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(warmup + repeats):
        start = time.perf_counter()
        if mode == "train":
            with autocast:
                loss = F.binary_cross_entropy_with_logits(model(clips).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            with torch.inference_mode(), autocast:
                model.forward_features(clips)
        _sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    row = {"backbone": name, "mode": mode, "precision": precision, "device": str(device),
           "batch": batch, "input": [spec.num_frames, spec.crop_size, spec.crop_size],
           "clips_per_s": batch / statistics.median(times)}
    if device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["x3d-tiny", "mvit-tiny"])
    parser.add_argument("--modes", nargs="+", choices=["forward", "train"], default=["forward"])
    parser.add_argument("--precisions", nargs="+", choices=list(DTYPES), default=["fp32"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (CPU runs only)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="also write every row to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its kernels
    rows = []
    for name in args.backbones:
        for mode in args.modes:
            for precision in args.precisions:
                if device.type == "cpu" and precision != "fp32":
                    continue  # autocast on the CPU is not what any of our jobs run
                try:
                    row = measure(name, mode=mode, precision=precision, device=device,
                                  batch=args.batch, warmup=args.warmup, repeats=args.repeats)
                except torch.OutOfMemoryError:
                    row = {"backbone": name, "mode": mode, "precision": precision,
                           "batch": args.batch, "error": "out of memory"}
                    torch.cuda.empty_cache()
                rows.append(row)
                memory = f", peak {row['peak_gib']:.1f} GiB" if "peak_gib" in row else ""
                rate = f"{row['clips_per_s']:.1f} clips/s" if "clips_per_s" in row \
                    else row["error"]
                print(f"{name:14s} {mode:7s} {precision:4s} batch {args.batch}: {rate}{memory}",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
