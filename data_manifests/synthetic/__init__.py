"""The synthetic long-video benchmark: presets and the generator.

``generate_benchmark(preset, out_dir, seed=..)`` renders mp4 files and a manifest holding every
annotation type (video labels, segments, points, activity, sentences with glances).
"""

from __future__ import annotations

from data_manifests.synthetic.generate import generate_benchmark, plan_annotations, resolve_spec
from data_manifests.synthetic.spec import SynthSpec

PRESETS: dict[str, SynthSpec] = {
    # Tests: ~12 short videos, a couple of seconds to render.
    "tiny": SynthSpec(
        name="tiny", videos_per_split=(8, 2, 2), duration_s=(10.0, 16.0), fps=8.0,
        frame_size=32, num_classes=4, num_activities=2, script_steps=(2, 3),
        actions_per_video=(2.0, 3.0), coverage=(0.15, 0.3), min_instance_s=1.5),
    # The demo: the whole pipeline on 2 CPU cores in ~10 minutes. Sparse actions (each 10-30% of
    # a video, 2-4 per video) give 8x2-clip precision of "all video labels" 0.26
    # (benchmarks/synthetic_label_noise.py). Moderate scene context: strong label-correlated
    # context made AdaptFocus worse than noisy training in the prototype (sweep it with
    # --set context_strength=...). 200 training videos: with 60, fine-tuning on the target
    # (even with clean intervals) gave no better localization features than the `source`
    # pre-training, and the localizers' seeds spread by up to 8 points (docs/benchmarks.md,
    # the demo).
    # 40 test videos of 24-60 s keep the whole demo near its time budget.
    "demo": SynthSpec(
        name="demo", videos_per_split=(200, 20, 40), duration_s=(24.0, 60.0), fps=8.0,
        frame_size=32, num_classes=8, num_activities=4, script_steps=(3, 4),
        actions_per_video=(2.0, 4.0), coverage=(0.1, 0.3), min_instance_s=2.0,
        context_strength=0.3),
    # Kinetics stand-in: short trimmed clips of other classes in another look, same primitives.
    "source": SynthSpec(
        name="source", videos_per_split=(300, 0, 60), duration_s=(3.0, 5.0), fps=8.0,
        frame_size=32, motions="source", num_classes=14, trimmed=True, look="source",
        num_scenes=6, actions_per_video=(1.0, 1.0), coverage=(1.0, 1.0), min_instance_s=0.5,
        context_strength=0.0),
    # The three below copy per-video statistics of the real datasets, measured from the official
    # annotation files by benchmarks/measure_dataset_statistics.py (see its docstring for the
    # files and how each number is computed). Knots = 1st, 10th, ..., 90th, 99th percentile.
    # Classes are capped by the motion catalogue (20 target motions); pixels stay 32x32.
    #
    # Charades (Charades_v1_train.csv, `length` and `actions`, 7,811 videos with actions):
    # 6.38 instances and 6.23 classes per video, instance = 42.8% of its video on average,
    # 98.4% of instances overlap another one, 91.5% of video time is inside some action,
    # clip (2.1 s) precision of "all video labels" 0.475. Actions are placed independently, as in
    # Charades; concurrent ones share an actor when they move different things. Charades has
    # no activity labels: its 15 scene types become 15 scripts with home scenes (context).
    # Planned (300 videos): 5.98 instances, 5.91 classes, coverage 0.394, 87% covered, 97.5%
    # overlapping; ~0.4 instances per video are lost when no actor is free for them.
    "charades-like": SynthSpec(
        name="charades-like", videos_per_split=(800, 100, 200),
        duration_s=(6.9, 20.0, 25.2, 28.4, 30.0, 30.5, 31.0, 31.6, 33.0, 36.8, 59.0),
        fps=8.0, frame_size=32, num_classes=20, num_activities=15, script_steps=(10, 16),
        actions_per_video=(1.0, 3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0),
        coverage=(0.077, 0.156, 0.186, 0.218, 0.259, 0.318, 0.402, 0.522, 0.703, 1.0, 1.0),
        min_instance_s=2.5, max_total_coverage=1.0, placement="independent",
        actors_per_video=(4, 4), num_scenes=15, context_strength=0.5),
    # Breakfast (groundTruth/*.txt at 15 fps, runs of equal labels, SIL = background; 1,712
    # videos): 4.88 instances and 4.23 classes per video, instance = 18.0% of its video, no
    # overlaps, 88.0% of video time inside actions, 10 activities using 4-13 classes each (mean
    # 7.4), clip precision 0.183. Real split 1 has 1,460/252 videos; use --videos 1712 for that
    # size (~1.9 M frames).
    "breakfast-like": SynthSpec(
        name="breakfast-like", videos_per_split=(400, 50, 100),
        duration_s=(18.4, 32.4, 47.1, 58.2, 72.2, 91.5, 120.5, 180.2, 226.2, 310.1, 555.1),
        fps=8.0, frame_size=32, num_classes=20, num_activities=10, script_steps=(4, 11),
        actions_per_video=(1.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 6.0, 7.0, 9.0, 13.9),
        coverage=(0.01, 0.028, 0.045, 0.064, 0.087, 0.12, 0.166, 0.221, 0.302, 0.428, 0.72),
        min_instance_s=2.0, fill_fraction=0.88, placement="sequential",
        num_scenes=10, context_strength=0.5),
    # THUMOS14 validation (annotation_val/*_val.txt without Ambiguous, durations from
    # thumos14_video_length_val.txt; 200 videos): 15.0 instances but 1.14 classes per video,
    # instance = 2.0% of its video (4.0 s), 16.6% of instances overlap another, 29.0% of video
    # time inside actions, clip precision 0.37. 20 classes, as THUMOS14.
    "thumos-like": SynthSpec(
        name="thumos-like", videos_per_split=(200, 20, 200),
        duration_s=(20.2, 37.0, 67.4, 100.4, 128.5, 150.5, 180.7, 210.3, 276.0, 450.5, 950.8),
        fps=8.0, frame_size=32, num_classes=20, num_activities=20, script_steps=(1, 2),
        optional_step_prob=0.5,
        actions_per_video=(1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 14.0, 23.0, 38.0, 95.1),
        coverage=(0.002, 0.004, 0.005, 0.007, 0.008, 0.01, 0.013, 0.017, 0.024, 0.038, 0.16),
        min_instance_s=0.5, max_total_coverage=0.9, placement="sequential", overlap_prob=0.1,
        actors_per_video=(2, 3), num_scenes=10, context_strength=0.5),
}

__all__ = ["PRESETS", "SynthSpec", "generate_benchmark", "plan_annotations", "resolve_spec"]
