"""`weakfeat extract status`: how far the shards of an export are, read from the store alone.

Works while jobs write: it only lists the store (complete videos, the failures file, the
staging folder), never opens a video. Exit codes of the command (:data:`EXIT_CODES`):

- 0: every selected video is complete (without a manifest: no failure, nothing being written)
- 1: some selected video failed (and is not complete since)
- 3: work remains and nothing failed (jobs still running, or not yet run)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from data_manifests.schema import Manifest, load_manifest
from extract.clip_grid import shard_index
from extract.store import layout, open_store

EXIT_CODES = {"complete": 0, "failed": 1, "running": 3}
MAX_REASONS = 3  # failures listed per shard (all of them are counted)


def export_status(store: str | Path, *, manifest: str | Path | Manifest | None = None,
                  split: str | None = None, shards: int = 1) -> dict[str, Any]:
    """Per-shard progress of an export into ``store`` (a dict of plain JSON types).

    With ``manifest``: for each shard ``i`` of ``shards``, the selected videos it owns and how
    many are complete, failed, remaining. ``state`` is ``complete``, ``failed`` or
    ``running`` (see :data:`EXIT_CODES`)."""
    opened = open_store(store)
    done = set(opened.video_ids())
    # One read of the failure records (host and time kept), then only videos not complete now.
    records = layout.read_failures(opened.location)
    failures = {k: r["reason"] for k, r in records.items() if k not in done}
    report: dict[str, Any] = {
        "store": str(store), "complete": len(done), "failed": len(failures),
        "writing": _being_written(opened.staging_entries(), opened.backend.suffix),
        "last_failure": _last_failure(records, failures),
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if manifest is None:
        report["failures"] = _first(failures, MAX_REASONS)
        report["state"] = ("failed" if failures else "running" if report["writing"]
                           else "complete")
        return report
    loaded = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    rows = [{"shard": i, "selected": 0, "complete": 0, "failed": 0, "remaining": 0,
             "failures": {}} for i in range(shards)]
    for video in loaded.split(split).videos:
        row = rows[shard_index(video.video_id, shards)]
        row["selected"] += 1
        if video.video_id in done:
            row["complete"] += 1
        elif video.video_id in failures:
            row["failed"] += 1
            if len(row["failures"]) < MAX_REASONS:
                row["failures"][video.video_id] = failures[video.video_id]
        else:
            row["remaining"] += 1
    totals = {key: sum(row[key] for row in rows)
              for key in ("selected", "complete", "failed", "remaining")}
    report.update(manifest=str(loaded.root or manifest), split=split, shards=shards,
                  per_shard=rows, totals=totals,
                  state="failed" if totals["failed"] else "running" if totals["remaining"]
                  else "complete")
    return report


def exit_code(report: dict[str, Any]) -> int:
    return EXIT_CODES[report["state"]]


def format_status(report: dict[str, Any]) -> str:
    """The report as a few lines: totals, a table per shard, failures, videos in flight."""
    lines = []
    if "totals" in report:
        t = report["totals"]
        where = f"split {report['split']}, " if report.get("split") else ""
        lines.append(f"{report['store']}: {t['complete']} of {t['selected']} selected videos "
                     f"complete, {t['failed']} failed, {t['remaining']} remaining "
                     f"({where}{report['shards']} shard{'s' * (report['shards'] != 1)})")
        width = max(5, len(f"{report['shards'] - 1}/{report['shards']}"))
        lines.append(f"  {'shard':>{width}} {'selected':>9} {'complete':>9} {'failed':>7} "
                     f"{'remaining':>10}")
        for row in report["per_shard"]:
            name = f"{row['shard']}/{report['shards']}"
            lines.append(f"  {name:>{width}} {row['selected']:>9} {row['complete']:>9} "
                         f"{row['failed']:>7} {row['remaining']:>10}")
            lines += [f"      FAILED {vid}: {reason}" for vid, reason in row["failures"].items()]
            if row["failed"] > len(row["failures"]):
                lines.append(f"      ... and {row['failed'] - len(row['failures'])} more")
        outside = report["failed"] - t["failed"]
        if outside:
            lines.append(f"  (+ {outside} failed video{'s' * (outside > 1)} outside this "
                         "selection)")
    else:
        lines.append(f"{report['store']}: {report['complete']} videos complete, "
                     f"{report['failed']} failed (give --manifest for per-shard progress)")
        lines += [f"  FAILED {vid}: {reason}" for vid, reason in report["failures"].items()]
        if report["failed"] > len(report["failures"]):
            lines.append(f"  ... and {report['failed'] - len(report['failures'])} more")
    writing = report["writing"]
    if writing:
        shown = ", ".join(w["video_id"] + (f" ({w['host']})" if w["host"] else "")
                          for w in writing[:5])
        more = f" and {len(writing) - 5} more" if len(writing) > 5 else ""
        lines.append(f"  being written: {len(writing)}: {shown}{more}")
    last = report["last_failure"]
    if last:
        lines.append(f"  last failure: {last['video_id']} at {last['time']} on {last['host']}")
    return "\n".join(lines)


def _last_failure(records: dict[str, dict[str, Any]], current: dict[str, str]
                  ) -> dict[str, Any] | None:
    """The most recent failure among videos still failed (times are ISO UTC: they sort)."""
    still = [r for vid, r in records.items() if vid in current]
    if not still:
        return None
    last = max(still, key=lambda r: str(r.get("time", "")))
    return {"video_id": last.get("video_id"), "time": last.get("time"), "host": last.get("host")}


def _being_written(entries: list[str], suffix: str) -> list[dict[str, str | None]]:
    """Videos of the store's staging entries: ``<key>#<host>#<pid>#<random>`` in a folder,
    ``<key><suffix>`` on object storage (a killed writer's entries stay until cleaned up)."""
    out = []
    for name in entries:
        parts = name.split("#")
        key = parts[0]
        if key == layout.FAILURES_FILE:  # a failures file being saved, not a video
            continue
        if suffix and len(parts) == 1 and key.endswith(suffix):
            key = key[: -len(suffix)]
        host, pid = (parts[-3], parts[-2]) if len(parts) >= 4 else (None, None)
        out.append({"video_id": layout.decode_id(key), "host": host, "pid": pid})
    return out


def _first(mapping: dict[str, str], count: int) -> dict[str, str]:
    return dict(sorted(mapping.items())[:count])
