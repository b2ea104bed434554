"""Feature export throughput (clips/s) against the backbone's pure forward throughput.

Three numbers on the same videos, clips and batch size:

* forward: ``forward_features`` alone on clips prepared in memory beforehand (the ceiling);
* export:  ``weakfeat extract features`` (streamed decode thread -> forward -> writer thread,
  into a zarr store); goal >= 0.9x forward;
* naive:   the usual loop, per video: decode all frames -> cut clips -> forward -> ``np.save``;
* decode:  the export's decode + preprocessing alone (no forward): with a tiny backbone on CPU
  this, not the forward pass, is the ceiling.

    .venv/bin/python benchmarks/export_throughput.py --videos 6 --frames 300 --size 128x96 \
        --backbone x3d-tiny --batch-size 8 --threads 1 [--clip 16x1 --step 4]

``--threads`` sets torch's intra-op threads (the decode thread is extra).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from data_manifests.schema import ManifestMeta, VideoRecord, load_manifest, write_manifest
from data_manifests.video_reader import iter_frames
from extract.clip_grid import parse_clip
from extract.store.export import (
    ClipGeometry,
    ExportOptions,
    ModelSpec,
    cached_model,
    clip_starts,
    export_features,
    frame_preparer,
    iter_clip_batches,
)
from extract.transforms import prepare_clip

FPS = 30


def make_videos(root: Path, count: int, frames: int, width: int, height: int) -> Path:
    (root / "videos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(count):
        base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        path = root / "videos" / f"v{i}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"g": "16"}
            for t in range(frames):
                img = np.roll(base, 3 * t, axis=1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        records.append(VideoRecord(video_id=f"v{i}", path=f"videos/v{i}.mp4", split="test",
                                   duration=frames / FPS, fps=FPS, num_frames=frames))
    write_manifest((ManifestMeta(dataset="bench", classes=("a",), fps=FPS), records), root)
    return root


def video_clips(path: Path, geometry: ClipGeometry, spec) -> torch.Tensor:
    """All clips of a video, prepared: (T, C, F, S, S). Decodes the whole video into memory."""
    frames = torch.from_numpy(np.stack(list(iter_frames(path)))).permute(3, 0, 1, 2)
    n = frames.shape[1]
    clips = []
    for start in clip_starts(n, geometry):
        idx = [min(int(start) + j * geometry.frame_stride, n - 1)
               for j in range(geometry.clip_frames)]
        clips.append(prepare_clip(frames[:, idx], spec, train=False))
    return torch.stack(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="128x96", help="WxH of the source videos")
    parser.add_argument("--backbone", default="x3d-tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clip", default=None, help="FxTAU (default: the backbone's)")
    parser.add_argument("--step", type=int, default=None, help="default F * TAU")
    parser.add_argument("--decode-threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of N for each number")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="export_bench_"))
    try:
        root = make_videos(work / "m", args.videos, args.frames, width, height)
        manifest = load_manifest(root)
        spec_ = ModelSpec(backbone=args.backbone)
        model, _ = cached_model(spec_)
        spec = model.input_spec
        frames, stride = parse_clip(args.clip) if args.clip else (spec.num_frames,
                                                                   spec.frame_stride)
        geometry = ClipGeometry(frames, stride, args.step or frames * stride)
        prepared = [video_clips(manifest.video_path(v), geometry, spec) for v in manifest.videos]
        num_clips = sum(len(c) for c in prepared)

        def forward_only() -> float:
            t0 = time.perf_counter()
            with torch.inference_mode():
                for clips in prepared:  # batches never span videos, as in export
                    for b in range(0, len(clips), args.batch_size):
                        model.forward_features(clips[b:b + args.batch_size])
            return time.perf_counter() - t0

        def export_run(i: int) -> float:
            t0 = time.perf_counter()
            export_features(model_spec=spec_, manifest=manifest, store=work / f"s{i}.zarr",
                            clip=(geometry.clip_frames, geometry.frame_stride),
                            step=geometry.step, batch_size=args.batch_size, device="cpu",
                            decode_threads=args.decode_threads,
                            progress=False)
            return time.perf_counter() - t0

        def naive_run(i: int) -> float:
            out = work / f"naive{i}"
            out.mkdir()
            t0 = time.perf_counter()
            with torch.inference_mode():
                for video in manifest.videos:
                    clips = video_clips(manifest.video_path(video), geometry, spec)
                    feats = torch.cat([model.forward_features(clips[b:b + args.batch_size])
                                       for b in range(0, len(clips), args.batch_size)])
                    np.save(out / f"{video.video_id}.npy", feats.numpy())
            return time.perf_counter() - t0

        def decode_only() -> float:
            opts = ExportOptions(geometry=geometry, crop_size=spec.crop_size,
                                 short_side=spec.short_side, mean=spec.mean, std=spec.std,
                                 batch_size=args.batch_size)
            prepare = frame_preparer(opts)
            t0 = time.perf_counter()
            for video in manifest.videos:
                for _ in iter_clip_batches(manifest.video_path(video), opts, prepare):
                    pass
            return time.perf_counter() - t0

        forward_only()  # warm-up
        t_forward = min(forward_only() for _ in range(args.repeats))
        t_export = min(export_run(i) for i in range(args.repeats))
        t_naive = min(naive_run(i) for i in range(args.repeats))
        t_decode = min(decode_only() for _ in range(args.repeats))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.backbone}, {args.videos} videos x {args.frames} frames {args.size}, "
          f"{num_clips} clips of {geometry.clip_frames}x{geometry.frame_stride} at "
          f"{spec.crop_size}px, batch {args.batch_size}, torch threads {args.threads}, "
          f"decode threads {args.decode_threads}")
    for name, seconds in (("forward only", t_forward), ("export", t_export),
                          ("naive loop", t_naive), ("decode only", t_decode)):
        print(f"{name:13s} {num_clips / seconds:8.1f} clips/s  ({t_forward / seconds:.2f}x forward)")


if __name__ == "__main__":
    main()
