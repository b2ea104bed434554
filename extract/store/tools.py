"""Tools around a store: inspect/verify, npy-folder import and export, convert, combine.

``combine`` aligns B to A in time: for every clip of A, B's features are linearly interpolated
(``align="linear"``, per dimension, between B's two nearest clip centres; clamped to B's first
/ last clip outside B's range) or taken from B's nearest clip (``align="nearest"``). The
result has A's timestamps, geometry and T, and D = D_A + D_B.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_manifests.schema import Manifest, load_manifest
from extract.store.feature_store import FeatureStore, create_store, open_store
from extract.store.layout import (
    DIGEST_ATTRS,
    DamagedVideoError,
    StoreError,
    decode_id,
    encode_id,
)
from extract.store.location import store_exists

log = logging.getLogger(__name__)
ALIGNMENTS = ("linear", "nearest")


# ----------------------------------------------------------------------------- inspect
def inspect_store(path: str | Path, *, verify: bool = False,
                  manifest: str | Path | Manifest | None = None,
                  split: str | None = None) -> dict[str, Any]:
    """A report of a store: provenance, counts, dims, incomplete / failed videos; with
    ``verify`` every video is read (digests, shape, NaN/Inf, timestamps); with ``manifest`` its
    ids are compared. ``report["damaged"]`` maps every unreadable video to the reason (a
    damaged video does not stop the others being checked); ``report["problems"]`` lists what
    is wrong (empty when all is well)."""
    store = open_store(path)
    ids = store.video_ids()
    problems: list[str] = []
    report: dict[str, Any] = {
        "path": str(store.path), "backend": store.backend.name, "codec": store.attrs.get("codec"),
        "schema_version": store.attrs.get("schema_version"),
        "package_version": store.attrs.get("package_version"),
        "manifest_sha256": store.attrs.get("manifest_sha256"), "extractor": store.extractor,
        "dim": store.dim, "fps": store.fps, "num_videos": len(ids),
        "incomplete": store.staging_entries(), "failed": store.failures(),
    }
    clips, bad_dims, damaged = 0, [], {}
    for video_id in tqdm(ids, desc="inspect", unit="video", disable=len(ids) < 100):
        try:
            shape = store.array_info(video_id)["shape"]
        except DamagedVideoError as exc:
            damaged[video_id] = exc.reason
            continue
        clips += shape[0]
        if shape[1] != store.dim:
            bad_dims.append(video_id)
    report["num_clips"] = clips
    if bad_dims:
        problems.append(f"features dim != {store.dim}: {bad_dims}")
    if report["failed"]:
        problems.append(f"{len(report['failed'])} failed videos: {sorted(report['failed'])}")
    if verify:
        nonfinite, bad_ts, not_complete = [], [], []
        for video_id in tqdm(ids, desc="verify", unit="video", disable=len(ids) < 100):
            if video_id in damaged:
                continue
            try:
                feats = store.read_features(video_id)
                ts = store.read_timestamps(video_id)
                attrs = store.video_attrs(video_id)
            except DamagedVideoError as exc:
                damaged[video_id] = exc.reason
                continue
            if not np.isfinite(feats).all():
                nonfinite.append(video_id)
            if ts.shape != (feats.shape[0],) or not np.isfinite(ts).all() or (
                    np.diff(ts) <= 0).any():
                bad_ts.append(video_id)
            if attrs.get("complete") is not True:
                not_complete.append(video_id)
        report["verified"] = len(ids)
        for name, bad in (("NaN/Inf in features", nonfinite),
                          ("bad timestamps (length, non-finite or not increasing)", bad_ts),
                          ("complete attr missing", not_complete)):
            if bad:
                problems.append(f"{name}: {bad}")
    report["damaged"] = dict(sorted(damaged.items()))
    if damaged:
        problems.append(f"{len(damaged)} damaged videos (delete and export them again): "
                        f"{sorted(damaged)}")
    if manifest is not None:
        manifest = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        wanted = {v.video_id for v in manifest.split(split).videos}
        missing, extra = sorted(wanted - set(ids)), sorted(set(ids) - wanted)
        report["manifest"] = {"videos": len(wanted), "missing": missing, "extra": extra}
        if missing:
            problems.append(f"{len(missing)} manifest videos missing from the store: {missing}")
        if extra:
            problems.append(f"{len(extra)} store videos not in the manifest: {extra}")
    report["problems"] = problems
    return report


def format_report(report: dict[str, Any]) -> str:
    ex = report["extractor"]
    lines = [
        (f"{report['path']} ({report['backend']}, codec {report['codec']}, "
        f"schema {report['schema_version']}, weakfeat {report['package_version']})"),
        (f"  extractor: {ex.get('backbone')} [{ex.get('supervision')}] weights "
        f"{str(ex.get('weights_sha256'))[:12]}, clip {ex.get('clip_frames')}x"
        f"{ex.get('frame_stride')} step {ex.get('clip_step')}, crops {ex.get('crops')}, "
        f"{ex.get('dtype')}"),
        (f"  videos: {report['num_videos']}, clips: {report['num_clips']}, dim: {report['dim']}, "
        f"fps: {report['fps']}"),
        f"  incomplete (staging): {len(report['incomplete'])}, failed: {len(report['failed'])}",
    ]
    lines += [f"    failed {k}: {v}" for k, v in sorted(report["failed"].items())]
    if "verified" in report:
        lines.append(f"  verified: {report['verified']} videos read")
    lines += [f"    damaged {k}: {v}" for k, v in report["damaged"].items()]
    if "manifest" in report:
        m = report["manifest"]
        lines.append(f"  manifest: {m['videos']} videos, {len(m['missing'])} missing, "
                     f"{len(m['extra'])} extra")
    lines += [f"  PROBLEM: {p}" for p in report["problems"]] or ["  OK"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- npy folders
def import_npy(folder: str | Path, store: str | Path, *, fps: float | Mapping[str, float],
               clip: tuple[int, int], step: int, backbone: str = "external",
               supervision: str = "kinc", weights_sha256: str = "unknown",
               manifest: str | Path | None = None, dtype: str = "float32") -> int:
    """Import a folder of ``<video_id>.npy`` files, each (T, D), into a store; returns the
    number written. Row t is the clip starting at frame ``t * step`` (timestamps as export) at
    ``fps``: one rate, or one per video id (THUMOS'14's features are taken at each video's own
    rate); every video needs one, checked before anything is written. ``manifest``
    (optional) supplies num_frames and duration; else ``T * step`` frames."""
    from extract.store.export import ClipGeometry, clip_timestamps

    folder = Path(folder)
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise StoreError(f"{folder}: no .npy files to import")
    rates = fps if isinstance(fps, Mapping) else {decode_id(p.stem): fps for p in files}
    lacking = [decode_id(p.stem) for p in files if decode_id(p.stem) not in rates]
    if lacking:
        raise StoreError(f"{folder}: no fps for {len(lacking)} video(s) in the fps map "
                         f"({name_ids(lacking)})")
    bad = {v: r for v, r in rates.items() if not (isinstance(r, (int, float)) and r > 0)}
    if bad:
        video, rate = next(iter(bad.items()))
        raise StoreError(f"fps map: video {video!r} has fps {rate!r}; expected a number > 0")
    geometry = ClipGeometry(clip[0], clip[1], step)
    first = np.load(files[0], mmap_mode="r")
    if first.ndim != 2:
        raise StoreError(f"{files[0]}: expected a (T, D) array, got shape {first.shape}")
    records = {}
    if manifest is not None:
        records = load_manifest(manifest).by_id()
    extractor = {"backbone": backbone, "weights_sha256": weights_sha256,
                 "supervision": supervision, "clip_frames": clip[0], "frame_stride": clip[1],
                 "clip_step": step, "crops": 1, "dim": int(first.shape[1]),
                 # one rate for the store, or None when its videos differ (as export records it)
                 "fps": float(next(iter(set(rates.values())))) if len(set(rates.values())) == 1
                 else None,
                 "dtype": dtype, "source": f"import-npy {folder.name}"}
    writer = create_store(store, extractor=extractor, manifest_sha256=None)
    done, written = writer.done_ids(), 0
    for path in tqdm(files, desc="import-npy", unit="video"):
        video_id = decode_id(path.stem)
        if video_id in done:
            continue
        feats = np.load(path)
        if feats.ndim != 2 or feats.shape[1] != first.shape[1]:
            raise StoreError(f"{path}: shape {feats.shape}, expected (T, {first.shape[1]}) "
                             f"like {files[0].name}")
        starts = np.arange(feats.shape[0]) * step
        record, rate = records.get(video_id), float(rates[video_id])
        num_frames = record.num_frames if record else int(feats.shape[0] * step)
        duration = record.duration if record else num_frames / rate
        # a manifest's frame count trims a padded last clip's centre; T * step is only a guess
        timestamps = clip_timestamps(starts, geometry, rate, record.num_frames if record else None)
        writer.write_video(video_id, feats, timestamps,
                           num_frames=num_frames, fps=rate, duration=duration)
        written += 1
    writer.close()
    return written


def export_npy(store: str | Path, folder: str | Path) -> int:
    """Write one ``<video_id>.npy`` (T, D) float32 per video (ids percent-encoded as file
    names) and ``store_meta.json`` (extractor and per-video timestamps/attrs); returns the
    number written. Damaged videos are not written but listed under ``"damaged"`` in
    ``store_meta.json``, and then the export fails naming them."""
    source = open_store(store)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"extractor": source.extractor, "videos": {}, "damaged": {}}
    for video_id in tqdm(source.video_ids(), desc="export-npy", unit="video"):
        try:
            feats = source.read_features(video_id)
            times = source.read_timestamps(video_id)
            attrs = source.video_attrs(video_id)
        except DamagedVideoError as exc:
            meta["damaged"][video_id] = exc.reason
            continue
        target = folder / f"{encode_id(video_id)}.npy"
        tmp = folder / f".{target.name}.tmp.npy"
        np.save(tmp, feats)
        tmp.replace(target)
        # The digests describe the store's bytes (maybe float16), not the .npy: left out.
        meta["videos"][video_id] = {**{k: v for k, v in attrs.items()
                                       if k not in DIGEST_ATTRS.values()},
                                    "timestamps": times.tolist()}
    (folder / "store_meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    _fail_if_damaged(meta["damaged"], source.path,
                     f"{len(meta['videos'])} videos written to {folder}")
    return len(meta["videos"])


# ----------------------------------------------------------------------------- convert, combine
def convert_store(src: str | Path, dst: str | Path, *, codec: str | None = None) -> int:
    """Copy every complete video (values, timestamps, attrs) and the failures into ``dst``
    (another backend, or another codec); resumable. Returns the number copied. An existing
    ``dst`` must be an earlier copy of ``src`` (resumed): one holding videos ``src`` has not, or
    made for another manifest, is refused before anything is written."""
    source = open_store(src)
    if store_exists(dst):
        target = open_store(dst)
        foreign = sorted(set(target.video_ids()) - set(source.video_ids()))
        if foreign:
            raise StoreError(f"{dst} already holds {len(foreign)} video(s) that {src} has not "
                             f"({name_ids(foreign)}): it is another store; convert into a new "
                             "path")
        if target.attrs.get("manifest_sha256") != source.attrs.get("manifest_sha256"):
            raise StoreError(f"{dst} was made for another manifest than {src}; convert into a "
                             "new path")
    writer = create_store(dst, extractor=source.extractor,
                          manifest_sha256=source.attrs.get("manifest_sha256"), codec=codec)
    done, copied, damaged = writer.done_ids(), 0, {}
    for video_id in tqdm(source.video_ids(), desc="convert", unit="video"):
        if video_id in done:
            continue
        try:
            _copy_video(source, writer, video_id, source.read_features(video_id))
        except DamagedVideoError as exc:
            damaged[video_id] = f"damaged in {exc.store}: {exc.reason}"
            continue
        copied += 1
    writer.record_failures({**source.failures(), **damaged})
    writer.close()
    _fail_if_damaged(damaged, source.path, f"{copied} videos copied to {dst} (the damaged "
                     "ones are recorded as failed there)")
    return copied


def name_ids(ids: list[str], shown: int = 5) -> str:
    """``'a', 'b' and 3 more``: video ids for a one-line message."""
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(map(repr, ids[:shown])) + more


def _fail_if_damaged(damaged: dict[str, str], stores: str | Path, outcome: str) -> None:
    """After a tool went on past damaged videos: fail with one line that names them."""
    if damaged:
        raise StoreError(f"{len(damaged)} damaged videos skipped ({name_ids(sorted(damaged))}); "
                         f"{outcome}. Find them with `weakfeat extract inspect --verify` on "
                         f"{stores}, delete them there and export them again")


def _copy_video(source: FeatureStore, writer: Any, video_id: str, features: np.ndarray,
                timestamps: np.ndarray | None = None) -> None:
    attrs = source.video_attrs(video_id)
    writer.write_video(video_id, features,
                       source.read_timestamps(video_id) if timestamps is None else timestamps,
                       num_frames=attrs["num_frames"], fps=attrs["fps"],
                       duration=attrs["duration"])


def align_features(features: np.ndarray, times: np.ndarray, target_times: np.ndarray, *,
                   align: str = "linear") -> np.ndarray:
    """Resample (T_b, D) features given at ``times`` (T_b,) to ``target_times`` (T_a,).

    linear: per-dimension interpolation, clamped at the ends; nearest: the closest clip
    (ties go to the earlier one). -> (T_a, D)."""
    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    if len(times) == 1:
        return np.repeat(features[:1], len(target_times), axis=0)
    right = np.clip(np.searchsorted(times, target_times, side="left"), 1, len(times) - 1)
    left = right - 1
    if align == "nearest":
        pick = np.where(np.abs(target_times - times[left]) <= np.abs(times[right] - target_times),
                        left, right)
        return features[pick]
    span = times[right] - times[left]
    w = np.clip((target_times - times[left]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    return (features[left] * (1 - w)[:, None] + features[right] * w[:, None]).astype(
        features.dtype)


def combine_stores(a: str | Path, b: str | Path, out: str | Path, *,
                   align: str = "linear") -> dict[str, Any]:
    """Concatenate A and B along D on A's clips (B resampled with :func:`align_features`).

    Videos present in only one store are skipped and listed. Returns
    ``{"written", "only_in_a", "only_in_b"}``. Videos damaged in A or B are recorded as failed
    in ``out``, and then the combine fails naming them."""
    sa, sb = open_store(a), open_store(b)
    ea, eb = sa.extractor, sb.extractor
    digest = hashlib.sha256(f"{ea['weights_sha256']}|{eb['weights_sha256']}|{align}".encode())
    extractor = {**ea, "backbone": f"{ea['backbone']}+{eb['backbone']}",
                 "weights_sha256": digest.hexdigest(),
                 "supervision": f"{ea['supervision']}+{eb['supervision']}",
                 "dim": sa.dim + sb.dim, "combined": {"a": ea, "b": eb, "align": align}}
    writer = create_store(out, extractor=extractor,
                          manifest_sha256=sa.attrs.get("manifest_sha256"))
    ids_a, ids_b = set(sa.video_ids()), set(sb.video_ids())
    done, written, damaged = writer.done_ids(), 0, {}
    for video_id in tqdm(sorted(ids_a & ids_b), desc="combine", unit="video"):
        if video_id in done:
            continue
        try:
            ts_a = sa.read_timestamps(video_id)
            fb = align_features(sb.read_features(video_id), sb.read_timestamps(video_id), ts_a,
                                align=align)
            _copy_video(sa, writer, video_id,
                        np.concatenate([sa.read_features(video_id), fb], axis=1), ts_a)
        except DamagedVideoError as exc:
            damaged[video_id] = f"damaged in {exc.store}: {exc.reason}"
            continue
        written += 1
    writer.record_failures(damaged)
    writer.close()
    _fail_if_damaged(damaged, f"{sa.path} and {sb.path}", f"{written} videos written to {out}")
    return {"written": written, "only_in_a": sorted(ids_a - ids_b),
            "only_in_b": sorted(ids_b - ids_a)}
