"""`weakfeat pipelines run RECIPE --dry-run`: what a run would do, checked before any GPU time.

Every step is planned in order, one block each:

* ``data build``: run for real (the same converter, the same options) into
  ``<root>/.dry-run/<step folder>``, so the manifests come from the official annotation files
  now; the videos root, when given, is checked for the manifest's files (existence only,
  nothing is decoded);
* ``extract train``: the config is loaded with its ``--set`` overrides (unknown keys and bad
  values are errors), its manifest (the dry-run one) and splits are read, and the plan prints
  backbone, mode, F x tau, batch, epochs, iterations and the clips the run decodes (one per
  video and iteration slot, plus the evaluation views);
* ``extract features``: the clips the export cuts, by the rule of
  ``extract/clip_grid.py`` (:func:`clip_count`, shared with the export), from each video's frame count;
* ``downstream train TASK``: the task's config is loaded and the training / validation videos
  are chosen as the trainer chooses them;
* anything else: the resolved command.

Later steps read the dry-run manifests: an argument naming a ``data build`` step's folder is
pointed at its dry-run copy. A parameter without a value (``videos`` by default) is left out
of the commands, together with the option it belongs to. The option parsing uses the real
click commands (unknown options are errors) but no value checks: folders that earlier steps
would create do not exist yet.

Nothing here imports torch unless the recipe has a step that needs it (training, export and
localization steps import their own command modules and configs).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from data_manifests.schema import Manifest, load_manifest
from extract.clip_grid import clip_count, in_shard, parse_clip, parse_shard
from pipelines.recipe import Recipe, Step
from pipelines.runner import is_done

SCRATCH = ".dry-run"
# Root group of each `weakfeat` command group: imported only when a step uses it.
_GROUPS = {"data": ("data_manifests.cli", "data"), "extract": ("extract.cli", "extract"),
           "downstream": ("downstream.cli", "downstream"),
           "pipelines": ("pipelines.cli", "pipelines")}


class _Problem(Exception):
    """Planning one command failed; the message says why (it names the step's command)."""


class _NotYet(Exception):
    """A command reads what an earlier step makes and the dry run does not (e.g. `data synth`):
    it is shown, not estimated."""


@dataclass
class StepPlan:
    step: Step
    commands: list[str] = field(default_factory=list)  # as the dry run resolved them
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # numbers behind the details (tests)
    train_clips: int = 0  # clips decoded by training iterations
    eval_clips: int = 0  # clips decoded by a stage-1 run's own evaluation
    export_clips: int = 0  # clips cut by feature export (per crop)
    exported_videos: int = 0
    failed: bool = False  # its output could not be made: dependants are not planned
    blocked_by: tuple[str, ...] = ()
    done: bool = False  # already finished in the output folder (a run skips it)

    def text(self, number: int, total: int) -> str:
        state = (" (already done: a run skips it)" if self.done else "")
        lines = [f"[{number}/{total}] {self.step.id}{state}"]
        if self.blocked_by:
            lines.append(f"  blocked: needs {', '.join(self.blocked_by)}, which failed")
        lines += [f"  $ {command}" for command in self.commands]
        lines += [f"  {detail}" for detail in self.details]
        lines += [f"  PROBLEM: {problem}" for problem in self.problems]
        return "\n".join(lines)


@dataclass
class DryRunPlan:
    recipe: Recipe
    root: Path
    steps: list[StepPlan] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [f"{plan.step.id}: {p}" for plan in self.steps for p in plan.problems] + [
            f"{plan.step.id}: blocked by {', '.join(plan.blocked_by)}"
            for plan in self.steps if plan.blocked_by]

    @property
    def ok(self) -> bool:
        return not self.problems

    def step(self, step_id: str) -> StepPlan:
        return {plan.step.id: plan for plan in self.steps}[step_id]

    def summary(self) -> str:
        train = sum(p.train_clips for p in self.steps)
        evaluation = sum(p.eval_clips for p in self.steps)
        export = sum(p.export_clips for p in self.steps)
        done = sum(p.done for p in self.steps)
        problems = self.problems
        videos = sum(p.exported_videos for p in self.steps)
        lines = [f"Plan: {len(self.steps)} steps ({done} already done), {len(problems)} problem(s).",
                 (f"Clips to decode (estimate): {train:,} training + {evaluation:,} evaluation "
                  f"+ {export:,} export = {train + evaluation + export:,} "
                  f"({videos:,} videos exported).")]
        lines += [f"  PROBLEM {p}" for p in problems]
        return "\n".join(lines)


def plan_recipe(recipe: Recipe, root: Path, *,
                echo: Callable[[str], None] | None = None) -> DryRunPlan:
    """Plan every step of ``recipe`` as a run into ``root`` would do it; print as it goes."""
    planner = _Planner(recipe, root)
    plan = DryRunPlan(recipe, root)
    say = echo or (lambda _text: None)
    given = ", ".join(f"{k}={v if v is not None else '(not given)'}"
                      for k, v in recipe.params.items())
    say(f"Dry run of recipe {recipe.name} ({recipe.path}) into {root}"
        + (f"\nparams: {given}" if given else ""))
    by_id: dict[str, StepPlan] = {}
    for number, step in enumerate(recipe.steps, start=1):
        failed_needs = tuple(n for n in step.needs if by_id[n].failed or by_id[n].blocked_by)
        step_plan = StepPlan(step, done=is_done(step, root), blocked_by=failed_needs)
        if not failed_needs:
            planner.plan_step(step_plan)
        by_id[step.id] = step_plan
        plan.steps.append(step_plan)
        say(step_plan.text(number, len(recipe.steps)))
    say(plan.summary())
    return plan


class _Planner:
    """State shared by the steps of one dry run: dry-run folders, loaded manifests, runs."""

    def __init__(self, recipe: Recipe, root: Path) -> None:
        self.recipe = recipe
        self.root = root.resolve()
        self.scratch = self.root / SCRATCH
        self.videos = recipe.params.get("videos")
        self.repointed: dict[str, str] = {}  # a data step's folder -> its dry-run folder
        self.manifests: dict[str, Manifest] = {}
        self.trained: dict[str, str] = {}  # a training step's folder -> its backbone
        self.clips: dict[str, tuple[int, int]] = {}  # ... -> the F x tau it trains on
        self.specs: dict[str, Any] = {}

    # ------------------------------------------------------------------ one step
    def plan_step(self, plan: StepPlan) -> None:
        step = plan.step
        real = str(step.folder(self.root))
        builds = any(tuple(c[:2]) == ("data", "build") for c in step.commands)
        out = str(self.scratch / step.folder(self.root).name) if builds else real
        if builds:
            self.repointed[real] = out
        for command in step.commands:
            kept = _drop_unset(command, step.unset)
            args = [self._repoint(a.replace("{out}", out)) for a in kept]
            plan.commands.append(self._shown(args))
            try:
                name, click_command, rest = _click_command(args)
                options = _parse(name, click_command, rest)
                handler = _HANDLERS.get(name)
                if handler is not None:
                    handler(self, options, plan)
            except _Problem as exc:
                plan.problems.append(str(exc))
                if builds:
                    plan.failed = True
            except _NotYet as exc:
                plan.details.append(f"not estimated: {exc}")
        if step.unset:
            plan.details.append("left out of the commands (no value): "
                                + ", ".join(f"{{{name}}}" for name in step.unset))

    # ------------------------------------------------------------------ commands
    def data_synth(self, options: dict[str, Any], plan: StepPlan) -> None:
        """The synthetic benchmark's annotations, planned without rendering a video: the
        later steps are estimated on them."""
        import yaml

        from data_manifests.synthetic.generate import plan_annotations

        overrides = {}
        for item in options.get("sets") or ():
            key, sep, value = item.partition("=")
            if not sep:
                raise _Problem(f"data synth --set {item!r}: expected FIELD=VALUE")
            overrides[key.strip()] = yaml.safe_load(value)
        try:
            manifest = plan_annotations(options["preset"], seed=int(options.get("seed") or 0),
                                        num_videos=options.get("num_videos"),
                                        overrides=overrides)
        except (KeyError, ValueError) as exc:
            raise _Problem(f"data synth: {exc}") from exc
        self.manifests[os.path.abspath(options["out_dir"])] = manifest
        self._describe(manifest, plan, os.path.abspath(options["out_dir"]))
        plan.details.append("videos: rendered by this step (planned here, not rendered)")

    def _describe(self, manifest: Manifest, plan: StepPlan, out: str) -> None:
        splits: dict[str, int] = {}
        for video in manifest.videos:
            splits[video.split] = splits.get(video.split, 0) + 1
        plan.facts["splits"] = splits
        plan.facts["manifest"] = str(out)
        plan.details.append(
            f"manifest ({manifest.meta.dataset}, {len(manifest.classes)} classes): "
            + ", ".join(f"{name} {count:,}" for name, count in splits.items()) + " videos")

    def data_build(self, options: dict[str, Any], plan: StepPlan) -> None:
        from data_manifests.converters.build import build_manifest

        extra = {}
        if options.get("split_index") is not None:
            extra["split_index"] = int(options["split_index"])
        videos_root = options.get("videos_root")
        out = Path(options["out_dir"])
        if not Path(options["annotations"]).is_dir():
            hint = " (give --param annotations=DIR)" if "annotations" in self.recipe.params else ""
            raise _Problem(f"annotation folder {options['annotations']} not found{hint}")
        try:
            build_manifest(options["dataset"], options["annotations"], out,
                           videos_root=videos_root, **extra)
        except Exception as exc:  # any converter error is this step's problem, reported
            raise _Problem(f"data build {options['dataset']} from {options['annotations']} "
                           f"failed: {type(exc).__name__}: {exc}") from exc
        manifest = self.manifest(out)
        self._describe(manifest, plan, str(out))
        self.check_videos(None, manifest.videos, videos_root or self.videos, plan)

    def extract_train(self, options: dict[str, Any], plan: StepPlan) -> None:
        from data_manifests.config import ConfigError
        from extract.training.config import load_stage1_config

        try:
            config = load_stage1_config(options["config_path"], options.get("overrides") or ())
        except (ConfigError, OSError) as exc:
            raise _Problem(f"stage-1 config: {exc}") from exc
        manifest = self.manifest(config.data.manifest)
        train = self.split(manifest, config.data.train_split)
        if config.train.mode == "full":
            lacking = [v.video_id for v in train.videos if v.segments is None]
            if lacking:
                plan.problems.append(f"mode full needs interval labels; {len(lacking)} "
                                     f"training videos have none, e.g. {lacking[:3]}")
        backbone = config.model.backbone
        frames, stride = config.model.num_frames, config.model.frame_stride
        if frames is None or stride is None:
            spec = self.backbone_spec(backbone)
            frames, stride = frames or spec.num_frames, stride or spec.frame_stride
        else:
            self.check_backbone(backbone)
        self.check_pretrained(config.model.pretrained, plan)
        batch, epochs = config.train.batch_size, config.train.epochs
        per_epoch = _steps_per_epoch(len(train.videos), batch)
        iterations = epochs * per_epoch
        plan.train_clips = iterations * batch
        evaluated: list = []
        if config.eval.split:
            evaluated = [v for v in self.split(manifest, config.eval.split).videos if v.labels]
            plan.eval_clips = len(evaluated) * config.eval.views_t * config.eval.views_s
        self.trained[os.path.abspath(options["out"])] = backbone
        self.clips[os.path.abspath(options["out"])] = (frames, stride)
        plan.facts.update(backbone=backbone, mode=config.train.mode, clip=(frames, stride),
                          batch=batch, epochs=epochs, train_videos=len(train.videos),
                          iterations=iterations, eval_videos=len(evaluated),
                          views=(config.eval.views_t, config.eval.views_s),
                          manifest=str(manifest.root))
        focus = (f"; AdaptFocus theta {config.adaptfocus.theta}, {config.adaptfocus.weighting} "
                 f"W, warm-up {config.adaptfocus.warmup_fraction:.0%}"
                 if config.train.mode == "adaptfocus" else "")
        plan.details += [
            (f"{backbone}, mode {config.train.mode}, pretrained {config.model.pretrained}, "
             f"F x tau {frames}x{stride}{focus}"),
            (f"train: {len(train.videos):,} videos (split {config.data.train_split}), batch "
             f"{batch}, {epochs} epochs x {per_epoch:,} = {iterations:,} iterations "
             f"({config.optim.name}, lr {config.optim.lr})"),
            (f"evaluation: {len(evaluated):,} labelled videos (split {config.eval.split}) x "
             f"{config.eval.views_t}x{config.eval.views_s} views" if config.eval.split
             else "evaluation: none (eval.split is empty)"),
            f"clips decoded: {plan.train_clips:,} training + {plan.eval_clips:,} evaluation"]
        self.check_videos(manifest, [*train.videos, *evaluated], config.data.videos_root, plan)

    def extract_features(self, options: dict[str, Any], plan: StepPlan) -> None:
        manifest = self.manifest(options["manifest"])
        selected = self.split(manifest, options.get("split"))
        try:
            shard = parse_shard(options.get("shard") or "0/1")
        except ValueError as exc:
            raise _Problem(str(exc)) from None
        videos = [v for v in selected.videos if in_shard(v.video_id, shard)]
        run, backbone = options.get("run_dir"), options.get("backbone")
        if (run is None) == (backbone is None):
            raise _Problem("extract features needs exactly one of --run and --backbone")
        if run is not None:
            run = os.path.abspath(run)
            if run not in self.trained and not Path(run).is_dir():
                raise _Problem(f"--run {run}: neither a training step of this recipe nor an "
                               "existing run folder")
            backbone = self.trained.get(run)
        else:
            self.check_backbone(backbone)
            self.check_pretrained(options.get("pretrained"), plan)
        if options.get("clip"):
            try:
                frames, stride = parse_clip(options["clip"])
            except ValueError as exc:
                raise _Problem(str(exc)) from None
        elif run is not None and run in self.clips:  # export uses the clips the run trained on
            frames, stride = self.clips[run]
        elif backbone is not None:
            spec = self.backbone_spec(backbone)
            frames, stride = spec.num_frames, spec.frame_stride
        else:
            raise _Problem("give --clip FxTAU: the run's backbone is not known to the dry run")
        step = int(options["step"]) if options.get("step") else frames * stride
        crops = int(options.get("crops") or 1)
        clips = sum(clip_count(v.num_frames or math.floor(v.duration * v.fps + 1e-6), frames,
                               stride, step) for v in videos)
        plan.export_clips, plan.exported_videos = clips, len(videos)
        plan.facts.update(videos=len(videos), clips=clips, clip=(frames, stride), step=step,
                          crops=crops, manifest=str(manifest.root))
        where = f"split {options['split']}" if options.get("split") else "all splits"
        plan.details += [
            (f"export: {len(videos):,} videos ({where}), clip {frames}x{stride}, step {step} "
             f"frames, {crops} crop(s) -> {clips:,} clips ({clips * crops:,} forward passes)"),
            f"store: {options['store']}"]
        self.check_videos(manifest, videos, options.get("videos_root") or self.videos, plan)

    def train_task(self, options: dict[str, Any], plan: StepPlan) -> None:
        from data_manifests.config import ConfigError
        from downstream.data import split_ids
        from downstream.tasks import get_task
        from downstream.training.config import load_run_config

        task, method = options["task"], options["method"]
        try:
            config = load_run_config(get_task(task), method, options.get("config_path"),
                                     list(options.get("overrides") or ()))
        except (ConfigError, OSError) as exc:
            raise _Problem(f"{task} config: {exc}") from exc
        manifest = self.manifest(options["manifest"])
        try:
            train_ids, val_ids = split_ids(manifest, config.data.train_split,
                                           config.data.val_fraction, config.data.select_split)
        except ValueError as exc:
            raise _Problem(f"{task} training cannot pick its videos: {exc}") from exc
        plan.facts.update(task=task, method=method, train_split=config.data.train_split,
                          train_videos=len(train_ids), val_videos=len(val_ids))
        plan.details.append(f"{task} {method}: {len(train_ids):,} training (split "
                            f"{config.data.train_split}) / {len(val_ids):,} "
                            f"validation videos, {config.train.epochs} epochs, batch "
                            f"{config.train.batch_size}, device {config.train.device}")

    def predict(self, options: dict[str, Any], plan: StepPlan) -> None:
        manifest = self.manifest(options["manifest"])
        split = options.get("split") or "test"
        plan.details.append(f"predict: {len(self.split(manifest, split).videos):,} videos "
                            f"(split {split})")

    # ------------------------------------------------------------------ helpers
    def manifest(self, path: str | Path) -> Manifest:
        key = os.path.abspath(path)
        if key not in self.manifests and not Path(key).exists() and self.root in Path(key).parents:
            raise _NotYet(f"{key} is made by an earlier step that the dry run does not run")
        if key not in self.manifests:
            try:
                self.manifests[key] = load_manifest(key)
            except (ValueError, OSError) as exc:
                raise _Problem(f"manifest {key}: {exc}") from exc
        return self.manifests[key]

    def split(self, manifest: Manifest, name: str | None) -> Manifest:
        try:
            return manifest.split(name)
        except ValueError as exc:
            raise _Problem(str(exc)) from exc

    def check_videos(self, manifest: Manifest | None, videos: Sequence,
                     videos_root: str | None, plan: StepPlan) -> None:
        """Existence of the video files under the videos root (no decoding). Without a root,
        a command that reads videos looks in the manifest folder, and so does this check,
        unless the recipe takes the root as its ``videos`` parameter (or ``manifest`` is
        None: `data build` reads no video without a root); then nothing is checked."""
        if videos_root is None and manifest is not None and manifest.root is None:
            plan.details.append("videos: rendered by an earlier step (not checked)")
            return
        if videos_root is None and (manifest is None or "videos" in self.recipe.params):
            plan.details.append("videos: files not checked (no videos root; --param videos=DIR)")
            return
        videos_root = videos_root or str(manifest.root)
        folder = Path(videos_root)
        if not folder.is_dir():
            plan.problems.append(f"videos root {folder} is not a folder")
            return
        listed = {v.video_id: v.path for v in videos if v.path is not None}
        missing = sorted(vid for vid, path in listed.items() if not (folder / path).exists())
        plan.facts["videos_present"] = len(listed) - len(missing)
        plan.facts["videos_missing"] = len(missing)
        plan.details.append(f"videos: {len(listed) - len(missing):,} of {len(listed):,} "
                            f"present under {folder}")
        if missing:
            plan.problems.append(f"{len(missing):,} video file(s) missing under {folder}, "
                                 f"e.g. {missing[:3]}")

    def check_backbone(self, name: str) -> None:
        from extract.backbones import BACKBONES

        if name not in BACKBONES:
            raise _Problem(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")

    def backbone_spec(self, name: str) -> Any:
        """The backbone's own InputSpec (builds it once: only when a config leaves F x tau)."""
        if name not in self.specs:
            self.check_backbone(name)
            from extract.backbones import build_backbone

            self.specs[name] = build_backbone(name, num_classes=1).input_spec
        return self.specs[name]

    def check_pretrained(self, pretrained: str | None, plan: StepPlan) -> None:
        """A checkpoint path must exist, unless an earlier step of this recipe writes it."""
        if pretrained in (None, "kinetics400"):
            return
        path = Path(pretrained).resolve()
        if self.root in path.parents:
            return
        if not path.exists():
            plan.problems.append(f"pretrained checkpoint {path} does not exist")

    def _repoint(self, arg: str) -> str:
        for real, scratch in self.repointed.items():
            arg = arg.replace(real, scratch)
        return arg

    def _shown(self, args: Sequence[str]) -> str:
        cwd = os.getcwd() + os.sep
        return " ".join(["weakfeat", *args]).replace(cwd, "")


_HANDLERS: dict[str, Callable[[_Planner, dict[str, Any], StepPlan], None]] = {
    "data build": _Planner.data_build,
    "data synth": _Planner.data_synth,
    "extract train": _Planner.extract_train,
    "extract features": _Planner.extract_features,
    "downstream train": _Planner.train_task,
    "downstream predict": _Planner.predict,
}


def _drop_unset(command: Sequence[str], unset: Sequence[str]) -> list[str]:
    """Leave out arguments holding a parameter without value, with the option before them."""
    marks = tuple("{" + name + "}" for name in unset)
    out: list[str] = []
    for arg in command:
        if marks and any(mark in arg for mark in marks):
            if out and out[-1].startswith("--"):
                out.pop()
            continue
        out.append(arg)
    return out


def _click_command(args: Sequence[str]) -> tuple[str, click.Command, list[str]]:
    """(``"extract train"``, its click command, the remaining arguments)."""
    if not args or args[0] not in _GROUPS:
        raise _Problem(f"`weakfeat {' '.join(args[:1])}`: not a weakfeat command group "
                       f"({', '.join(_GROUPS)})")
    module, attr = _GROUPS[args[0]]
    command = getattr(importlib.import_module(module), attr)
    path, rest = [args[0]], list(args[1:])
    while isinstance(command, click.Group):
        # get_command: the stage groups import a command's module only when it is asked for.
        ctx = click.Context(command, info_name=" ".join(path))
        found = command.get_command(ctx, rest[0]) if rest else None
        if found is None:
            raise _Problem(f"`weakfeat {' '.join(path)}` has no command "
                           f"{rest[0] if rest else '(none given)'!r}; known: "
                           f"{', '.join(command.list_commands(ctx))}")
        command = found
        path.append(rest.pop(0))
    return " ".join(path), command, rest


def _parse(name: str, command: click.Command, args: list[str]) -> dict[str, Any]:
    """Option values as strings, by parameter name; unknown and missing options are errors."""
    ctx = click.Context(command, info_name=name)
    try:
        values, extra, _order = command.make_parser(ctx).parse_args(list(args))
    except click.UsageError as exc:
        raise _Problem(f"`weakfeat {name}`: {exc.format_message()}") from exc
    if extra:
        raise _Problem(f"`weakfeat {name}`: unexpected argument(s) {extra}")
    missing = [param.opts[0] for param in command.params
               if param.required and values.get(param.name) in (None, ())]
    if missing:
        raise _Problem(f"`weakfeat {name}`: missing {', '.join(missing)}")
    return values


def _steps_per_epoch(num_videos: int, batch_size: int) -> int:
    from extract.training.data import steps_per_epoch  # the loop's own rule (one process)

    return steps_per_epoch(num_videos, batch_size)
