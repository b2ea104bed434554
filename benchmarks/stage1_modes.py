"""Stage-1 benchmark: full / noisy / AdaptFocus on a synthetic long-video preset (paper Table 1,
Figure 3 ablation, Table S2 weighting functions), remedies, a coverage/context sweep, and the
cost of AdaptFocus (time per iteration, peak memory against video length).

    .venv/bin/python benchmarks/stage1_modes.py --out bench_out/stage1 --jobs 2 --epochs 150 \
        --sections main,ablation,weighting,remedies \
        --overrides '{"videos_per_split": [60, 10, 60], "duration_s": [30, 75]}'

is the table of docs/stage1.md (the `demo` preset as it was: 60 long training videos and 60 test
videos, where noisy labels cost mAP), with the Figure-3 ablation, Table S2 and the remedies on seed 0. The
remedies on 3 seeds: add ``--sections remedies --side-seeds 0 1 2``. Its sweep (measured before
the trunk learning-rate scale, see docs/stage1.md), each entry run for the same number of iterations
as the main runs:

    ... the same command ... --sections sweep --sweep '{
        "videos240": {"videos_per_split": [240, 10, 60]},
        "coverage3-15": {"videos_per_split": [60, 10, 60], "coverage": [0.03, 0.15]},
        "context0.8": {"videos_per_split": [60, 10, 60], "context_strength": 0.8}}'

Every run is cached as ``OUT/results/<name>.json``: rerunning the command skips finished runs,
so the benchmark can be stopped and continued. Tables go to ``OUT/stage1_modes.md``.
The tiny backbone (c3d-tiny, 32x32, 8x2 clips) is first pre-trained on the `source` preset (the
Kinetics stand-in), as the paper's models start from Kinetics.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

log = logging.getLogger("stage1_modes")

# Shared by every run: tiny backbone, 8 frames x stride 2 at 32x32, frames decoded once into RAM.
# The trunk learns at 0.03x the head's rate, as in c3d-tiny_synthetic-demo.yaml.
BASE = ["model.backbone=c3d-tiny", "model.num_frames=8", "model.frame_stride=2",
        "train.batch_size=16", "optim.name=adamw", "optim.lr=0.003",
        "optim.backbone_lr_scale=0.03", "train.log_every=5", "data.num_workers=0",
        "data.cache_frames=true"]
SOURCE_CONFIG = REPO / "extract" / "training" / "configs" / "c3d-tiny_synthetic-source.yaml"
ABLATION = {"clip focusing only": ["adaptfocus.action_focusing=false"],
            "action focusing only": ["adaptfocus.clip_focusing=false"],
            "both (AdaptFocus)": []}
WEIGHTINGS = ["constant", "linear", "logarithmic", "exponential"]
REMEDIES = {"paper (online Eq. 3)": [],
            "naive re-estimation every 2 epochs": ["adaptfocus.naive_every_epochs=2"],
            "spike decay 0.9 / epoch": ["adaptfocus.spike_decay=0.9"],
            "both remedies": ["adaptfocus.naive_every_epochs=2", "adaptfocus.spike_decay=0.9"],
            "trunk frozen for the 20% warm-up": ["optim.freeze_backbone_fraction=0.2"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_out/stage1"))
    parser.add_argument("--preset", default="demo", help="target synthetic preset")
    parser.add_argument("--overrides", default="{}", help="JSON generator overrides (target)")
    parser.add_argument("--sweep", default="{}",
                        help='JSON {"name": {generator overrides}} for the sweep (coverage, context, '
                             'number of videos); each entry runs as many iterations as the main '
                             'runs')
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--side-seeds", type=int, nargs="+", default=[0],
                        help="seeds of the ablation / weighting / remedy / sweep runs")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--source-epochs", type=int, default=24)
    parser.add_argument("--views", default="10x1")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE", help="stage-1 config override for every target run "
                        "(after BASE), e.g. --set optim.backbone_lr_scale=0.1; repeatable")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sections", default="main,ablation,weighting,remedies,sweep,cost")
    parser.add_argument("--memory-probe", nargs=2, metavar=("DATA", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.memory_probe:
        return _memory_probe(*args.memory_probe, epochs=2)

    sections = args.sections.split(",")
    out = args.out.resolve()
    (out / "results").mkdir(parents=True, exist_ok=True)
    target = _data(out / "data" / "target", args.preset, json.loads(args.overrides))
    source = _data(out / "data" / "source", "source", {})
    pretrained = _pretrain(out, source, args.source_epochs)
    common = [*BASE, f"model.pretrained={pretrained}", f"train.epochs={args.epochs}",
              *args.settings]

    jobs: list[tuple[str, Path, list[str]]] = []
    for seed in args.seeds if "main" in sections else ():
        for mode in ("full", "noisy", "adaptfocus"):
            jobs.append((f"main_{mode}_s{seed}", target, [*common, f"train.mode={mode}",
                                                          f"train.seed={seed}"]))
    for seed in args.side_seeds:
        af = [*common, "train.mode=adaptfocus", f"train.seed={seed}"]
        # Variants equal to the default AdaptFocus are not rerun: their rows read the main runs.
        if "ablation" in sections:
            jobs += [(f"ablation_{_slug(k)}_s{seed}", target, af + v)
                     for k, v in ABLATION.items() if v]
        if "weighting" in sections:
            jobs += [(f"weighting_{w}_s{seed}", target, af + [f"adaptfocus.weighting={w}"])
                     for w in WEIGHTINGS if w != "exponential"]
        if "remedies" in sections:
            jobs += [(f"remedy_{_slug(k)}_s{seed}", target, af + v)
                     for k, v in REMEDIES.items() if v]
    sweep = json.loads(args.sweep)
    if "sweep" in sections:
        for name, overrides in sweep.items():
            data = _data(out / "data" / f"sweep_{name}", args.preset, overrides)
            # Same number of iterations as the main runs, whatever the number of videos.
            epochs = _same_iterations(args.epochs, target, data)
            for seed in args.side_seeds:
                for mode in ("full", "noisy", "adaptfocus"):
                    jobs.append((f"sweep_{name}_{mode}_s{seed}", data,
                                 [*common, f"train.mode={mode}", f"train.seed={seed}",
                                  f"train.epochs={epochs}"]))
    todo = [job for job in jobs if not (out / "results" / f"{job[0]}.json").exists()]
    log.info("%d runs, %d to do", len(jobs), len(todo))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for name in pool.map(_run_job, [(out, *job, args.views) for job in todo]):
            log.info("finished %s", name)
    if "cost" in sections:
        _timing_section(out, target, pretrained)
        _memory_section(out, args.preset, json.loads(args.overrides), pretrained)
    report = render(out, args, sweep)
    (out / "stage1_modes.md").write_text(report)
    print(report)


# ---------------------------------------------------------------------------------------------


def _data(path: Path, preset: str, overrides: dict[str, Any]) -> Path:
    from data_manifests.synthetic import generate_benchmark

    if not (path / "videos.jsonl").exists():
        log.info("generating %s %s -> %s", preset, overrides, path)
        generate_benchmark(preset, path, seed=0, overrides=overrides or None)
    return path


def _same_iterations(epochs: int, reference: Path, data: Path) -> int:
    """Epochs on ``data`` giving the iterations of ``epochs`` on ``reference`` (batch fixed)."""
    from data_manifests.schema import load_manifest
    from extract.training.config import load_stage1_config
    from extract.training.data import steps_per_epoch

    batch = load_stage1_config(None, BASE).train.batch_size

    def per_epoch(path: Path) -> int:
        return steps_per_epoch(len(load_manifest(path).split("train").videos), batch, 1)

    return max(1, round(epochs * per_epoch(reference) / per_epoch(data)))


def _pretrain(out: Path, source: Path, epochs: int) -> Path:
    run = out / "runs" / "source_full"
    ckpt = run / "checkpoints" / "last.pt"
    if not ckpt.exists():
        from extract.training.config import load_stage1_config
        from extract.training.loop import train

        log.info("pre-training on the source preset")
        cfg = load_stage1_config(SOURCE_CONFIG, [f"data.manifest={source}",
                                                 f"train.epochs={epochs}"])
        train(cfg, run, resume=run.exists())
    return ckpt


def _run_job(job: tuple[Path, str, Path, list[str], str]) -> str:
    """Train + evaluate one configuration; write OUT/results/NAME.json."""
    import torch

    from data_manifests.run_folder import RunFolder
    from extract.training.config import load_stage1_config
    from extract.training.evaluate import evaluate_run
    from extract.training.loop import train

    torch.set_num_threads(1)
    out, name, data, overrides, views = job
    run = out / "runs" / name
    cfg = load_stage1_config(None, [*overrides, f"data.manifest={data}"])
    start = time.perf_counter()
    train(cfg, run, resume=run.exists())
    train_s = time.perf_counter() - start
    result = evaluate_run(run, data, split="test", views=views, plot_videos=2)
    records = list(RunFolder(run).read_metrics())
    warm = cfg.adaptfocus.warmup_fraction
    steps = max((r["step"] for r in records if "loss" in r), default=0)
    focus_times = [r["seconds_per_step"] for r in records
                   if "seconds_per_step" in r and r["step"] > warm * steps + cfg.train.log_every]
    success = [r["ase_success"] for r in records if r.get("ase_success") is not None]
    summary = {"name": name, "mAP": result["mAP_nanmean"], "mAP_matlab": result["mAP"],
               "top1_success": result.get("top1_success"), "train_seconds": train_s,
               "median_seconds_per_step": statistics.median(focus_times) if focus_times else None,
               "ase_success_last": success[-1] if success else None,
               "ase_success_curve": success, "overrides": overrides}
    (out / "results" / f"{name}.json").write_text(json.dumps(summary, indent=1))
    return name


def _timing_section(out: Path, data: Path, pretrained: Path, rounds: int = 2) -> None:
    """Median time per iteration, noisy vs AdaptFocus (focusing from step 0), run one after
    the other in this process with data read in the main process, alternated to share load."""
    import torch

    from data_manifests.run_folder import RunFolder
    from extract.training.config import load_stage1_config
    from extract.training.loop import train

    if (out / "results" / "timing.json").exists():
        return
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"noisy": [], "adaptfocus": []}
    for r in range(rounds):
        for mode in times:
            run = out / "runs" / f"timing_{mode}_{r}"
            cfg = load_stage1_config(None, [*BASE, f"data.manifest={data}", f"train.mode={mode}",
                                            f"model.pretrained={pretrained}", "train.epochs=4",
                                            "data.num_workers=0", "train.log_every=1",
                                            "adaptfocus.warmup_fraction=0"])
            train(cfg, run, resume=run.exists())
            times[mode] += [rec["seconds_per_step"] for rec in RunFolder(run).read_metrics()
                            if "seconds_per_step" in rec][1:]  # the first step warms caches
    summary = {mode: statistics.median(values) for mode, values in times.items()}
    summary["steps_each"] = len(times["noisy"])
    summary["adaptfocus_only_seconds"] = _adaptfocus_overhead(data)
    (out / "results" / "timing.json").write_text(json.dumps(summary, indent=1))


def _adaptfocus_overhead(data: Path, repeats: int = 200) -> float:
    """Seconds per iteration spent in AdaptFocus' own work (ASE lookup, W, M, Eq. 3 update)
    for a batch of 8 on this manifest's training videos: what it adds to a noisy iteration."""
    import torch

    from data_manifests.schema import load_manifest
    from extract.adaptfocus import ActionSaliency
    from extract.training.config import load_stage1_config
    from extract.training.loop import _focus

    manifest = load_manifest(data).split("train")
    ase = ActionSaliency([(v.video_id, [manifest.class_index[c] for c in v.labels])
                          for v in manifest.videos], len(manifest.classes))
    cfg = load_stage1_config(None)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(repeats):
        index = torch.randint(0, len(manifest.videos), (8,), generator=generator)
        batch = {"time": torch.rand(8, dtype=torch.float64) * 30,
                 "duration": torch.full((8,), 60.0, dtype=torch.float64)}
        probs = torch.rand(8, len(manifest.classes), generator=generator)
        _focus(cfg, ase, index, batch, probs, gamma=0.5)
        ase.update_online(index, batch["time"], probs)
    return (time.perf_counter() - start) / repeats


def _memory_section(out: Path, preset: str, overrides: dict[str, Any], pretrained: Path) -> None:
    """Peak RSS of a training process on videos of 1x and 4x the preset's length."""
    for factor in (1, 4):
        name = f"memory_len{factor}x"
        if (out / "results" / f"{name}.json").exists():
            continue
        from data_manifests.synthetic import PRESETS

        base = overrides.get("duration_s") or PRESETS[preset].duration_s
        longer = {**overrides, "duration_s": [d * factor for d in base],
                  "videos_per_split": [16, 0, 1]}
        data = _data(out / "data" / f"memory_{factor}x", preset, longer)
        proc = subprocess.run([sys.executable, __file__, "--memory-probe", str(data),
                               str(out / "runs" / name)], check=False, capture_output=True,
                              text=True, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"))
        if proc.returncode != 0:
            log.error("memory probe failed: %s", proc.stderr[-2000:])
            continue
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
        probe["length_factor"] = factor
        (out / "results" / f"{name}.json").write_text(json.dumps(probe, indent=1))


def _memory_probe(data: str, run: str, *, epochs: int) -> None:
    import torch

    from data_manifests.schema import load_manifest
    from extract.training.config import load_stage1_config
    from extract.training.loop import train

    torch.set_num_threads(1)
    # Streaming reads: the frame cache (an opt-in for small datasets) grows with video length
    # by design; what must not grow is the training itself (ASE state, clips, activations).
    cfg = load_stage1_config(None, [*BASE, f"data.manifest={data}", "train.mode=adaptfocus",
                                    f"train.epochs={epochs}", "data.num_workers=0",
                                    "data.cache_frames=false"])
    train(cfg, run, resume=Path(run).exists())
    durations = [v.duration for v in load_manifest(data).videos]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    print(json.dumps({"peak_rss_mib": peak_kib / 1024, "cuda_peak_bytes": cuda,
                      "mean_video_s": statistics.mean(durations)}))


# ---------------------------------------------------------------------------------------------


def _load(out: Path, name: str) -> dict | None:
    path = out / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _stat(out: Path, prefix: str, seeds, key: str = "mAP", scale: float = 100.0
          ) -> tuple[float, float, int] | None:
    values = [r[key] * scale for s in seeds if (r := _load(out, f"{prefix}_s{s}")) and r[key]
              is not None]
    if not values:
        return None
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread, len(values)


def _fmt(stat, ref: float | None = None) -> str:
    if stat is None:
        return "not run"
    mean, spread, n = stat
    delta = f" ({mean - ref:+.1f})" if ref is not None else ""
    return f"{mean:.1f} ± {spread:.1f}{delta} [n={n}]"


def render(out: Path, args, sweep: dict) -> str:
    lines = ["# Stage-1 benchmark (c3d-tiny, 8x2 clips, 32x32, pre-trained on `source`)", "",
             (f"Target preset `{args.preset}`, generator overrides `{args.overrides}`, "
             f"{args.epochs} epochs, settings {' '.join(args.settings) or 'none'} (after "
             f"BASE), views {args.views}. mAP in % (mean over classes with "
             "positives), mean ± standard deviation over seeds."), ""]
    full = _stat(out, "main_full", args.seeds)
    noisy = _stat(out, "main_noisy", args.seeds)
    af = _stat(out, "main_adaptfocus", args.seeds)
    lines += ["## Table 1 shape", "", "| Full (clean) | Weak (noisy) | Weak (AdaptFocus) |",
              "|---|---|---|",
              (f"| {_fmt(full)} | {_fmt(noisy, full[0] if full else None)} | "
              f"{_fmt(af, noisy[0] if noisy else None)} |"), ""]
    if full and noisy and af:
        gap = full[0] - noisy[0]
        if gap > 0:
            recovered = (af[0] - noisy[0]) / gap * 100
            lines += [(f"Full - Noisy gap: {gap:.1f} mAP points; AdaptFocus recovers "
                       f"{recovered:.0f}% of it."), ""]
        else:
            lines += [(f"Full - Noisy gap: {gap:.1f} mAP points: noisy training is not worse "
                       "than full supervision here, so this preset does not show the paper's "
                       "problem and 'recovery' is undefined."), ""]
    side = args.side_seeds
    lines += ["## Figure 3 ablation", "", "| Variant | mAP |", "|---|---|",
              f"| Weak (noisy) | {_fmt(_stat(out, 'main_noisy', side))} |"]
    lines += [f"| {k} | {_fmt(_stat(out, _variant('ablation', k, ABLATION), side))} |"
              for k in ABLATION]
    lines += ["", "## Table S2 weighting functions", "", "| W | mAP |", "|---|---|"]
    for w in WEIGHTINGS:
        prefix = "main_adaptfocus" if w == "exponential" else f"weighting_{w}"
        lines.append(f"| {w} | {_fmt(_stat(out, prefix, side))} |")
    lines += ["", "## Remedies", "", "| ASE variant | mAP | ASE top-1 success at the end |",
              "|---|---|---|"]
    for k in REMEDIES:
        prefix = _variant("remedy", k, REMEDIES)
        lines.append(f"| {k} | {_fmt(_stat(out, prefix, side))} | "
                     f"{_fmt(_stat(out, prefix, side, 'ase_success_last'))} |")
    if sweep:
        lines += ["", "## Sweep (generator overrides)", "",
                  "| setting | overrides | Full | Noisy | AdaptFocus | recovered |",
                  "|---|---|---|---|---|---|"]
        for name, overrides in sweep.items():
            stats = [_stat(out, f"sweep_{name}_{m}", side) for m in ("full", "noisy", "adaptfocus")]
            rec = "n/a"
            if all(stats) and stats[0][0] <= stats[1][0]:
                rec = "n/a (noisy >= full)"
            elif all(stats):
                rec = f"{(stats[2][0] - stats[1][0]) / (stats[0][0] - stats[1][0]) * 100:.0f}%"
            lines.append(f"| {name} | `{json.dumps(overrides)}` | " +
                         " | ".join(_fmt(s) for s in stats) + f" | {rec} |")
    lines += ["", "## Cost", ""]
    timing = _load(out, "timing")
    if timing:
        own = timing["adaptfocus_only_seconds"]
        lines.append(f"Dedicated timing runs ({timing['steps_each']} steps each, alternated, data "
                     f"read in-process): noisy {timing['noisy']:.4f} s/step, AdaptFocus "
                     f"{timing['adaptfocus']:.4f} s/step "
                     f"({(timing['adaptfocus'] / timing['noisy'] - 1) * 100:+.1f}%; the machine "
                     "was shared, so this difference is load noise). AdaptFocus' own work "
                     f"(ASE lookup, W, M, Eq. 3 update) takes {own:.5f} s per iteration = "
                     f"{own / timing['noisy'] * 100:.2f}% of a noisy iteration.")
    t_noisy = _stat(out, "main_noisy", args.seeds, "median_seconds_per_step", 1.0)
    t_af = _stat(out, "main_adaptfocus", args.seeds, "median_seconds_per_step", 1.0)
    if t_noisy and t_af:
        lines.append(f"Median time per iteration after the warm-up: noisy {t_noisy[0]:.4f} s,"
                     f" AdaptFocus {t_af[0]:.4f} s "
                     f"({(t_af[0] / t_noisy[0] - 1) * 100:+.1f}%). Runs shared 2 CPU cores with "
                     "other jobs, so these timings are noisy.")
    for factor in (1, 4):
        probe = _load(out, f"memory_len{factor}x")
        if probe:
            lines.append(f"- videos of mean length {probe['mean_video_s']:.1f} s: peak RSS "
                         f"{probe['peak_rss_mib']:.0f} MiB")
    lines.append("")
    return "\n".join(lines)


def _variant(section: str, key: str, table: dict[str, list[str]]) -> str:
    """Result prefix of a side variant; the default AdaptFocus reads the main runs."""
    return f"{section}_{_slug(key)}" if table[key] else "main_adaptfocus"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


if __name__ == "__main__":
    main()
