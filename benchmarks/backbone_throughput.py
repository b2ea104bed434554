"""Forward throughput of backbones on CPU (clips/s), the number the report quotes.

    .venv/bin/python benchmarks/backbone_throughput.py --backbones x3d-tiny mvit-tiny \
        --batch 8 --threads 1

Input: the backbone's own InputSpec size (x3d-tiny / mvit-tiny: 8 x 32 x 32), eval mode,
inference_mode; the median of `--repeats` timed batches after `--warmup` untimed ones.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from extract.backbones import build_backbone


def forward_throughput(name: str, *, batch: int, warmup: int, repeats: int) -> float:
    """Clips per second of `forward` for one backbone at its InputSpec size."""
    model = build_backbone(name, num_classes=10).eval()
    spec = model.input_spec
    clips = torch.randn(batch, 3, spec.num_frames, spec.crop_size, spec.crop_size)
    times = []
    with torch.inference_mode():
        for step in range(warmup + repeats):
            start = time.perf_counter()
            model(clips)
            if step >= warmup:
                times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["x3d-tiny", "mvit-tiny"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.backbones:
        rate = forward_throughput(name, batch=args.batch, warmup=args.warmup,
                                  repeats=args.repeats)
        print(f"{name}: {rate:.1f} clips/s (batch {args.batch}, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
