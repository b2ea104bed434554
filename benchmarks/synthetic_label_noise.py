"""How noisy is "every clip gets all of its video's labels" (the paper's Eq. 1 / Figure 1b)?

For every clip position of F frames with stride S in the train videos, compare the noisy clip
labels (all video labels) with the true clip labels (classes whose segments overlap the clip's
time span, the `full` mode of stage-1 training):

* pair precision = sum |true| / sum |noisy| over clips (recall is 1 by construction);
* exact = fraction of clips whose noisy label set equals the true set;
* background = fraction of clips that show no action at all.

    .venv/bin/python benchmarks/synthetic_label_noise.py --preset demo [--seed 0] \
        [--set coverage=[0.03,0.15]] [--frames 8 --stride 2]
    .venv/bin/python benchmarks/synthetic_label_noise.py --manifest DIR   # any manifest

With --preset only the annotations are planned (no video is rendered); they are the ones
`weakfeat data synth` writes for the same preset and seed.
"""

from __future__ import annotations

import argparse
import json

import yaml

from data_manifests.schema import Manifest, load_manifest
from data_manifests.synthetic import plan_annotations


def label_noise(manifest: Manifest, *, frames: int, stride: int, split: str = "train") -> dict:
    noisy_pairs = true_pairs = exact = background = clips = 0
    for video in manifest.split(split):
        if not video.segments:
            continue
        span = (frames - 1) * stride + 1  # frames covered by the clip
        for start in range(max(1, video.num_frames - span + 1)):
            t0, t1 = start / video.fps, (start + span) / video.fps
            true = {s.label for s in video.segments if s.start < t1 and t0 < s.end}
            noisy_pairs += len(video.labels)
            true_pairs += len(true)
            exact += true == set(video.labels)
            background += not true
            clips += 1
    return {"clips": clips, "pair_precision": round(true_pairs / max(noisy_pairs, 1), 3),
            "exact": round(exact / max(clips, 1), 3),
            "background": round(background / max(clips, 1), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset")
    source.add_argument("--manifest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        metavar="FIELD=VALUE")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    if args.preset:
        overrides = {k.strip(): yaml.safe_load(v)
                     for k, _, v in (item.partition("=") for item in args.sets)}
        manifest = plan_annotations(args.preset, seed=args.seed, overrides=overrides)
    else:
        manifest = load_manifest(args.manifest)
    result = label_noise(manifest, frames=args.frames, stride=args.stride, split=args.split)
    print(json.dumps({"dataset": manifest.meta.dataset, "frames": args.frames,
                      "stride": args.stride, **result}))


if __name__ == "__main__":
    main()
