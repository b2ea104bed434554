"""Build a manifest folder from a dataset's official files: ``meta.json``, ``videos.jsonl``
and ``kept_apart.jsonl`` (annotations the manifest does not hold, with the reason)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from data_manifests.converters import CONVERTERS
from data_manifests.converters.common import KEPT_APART_FILE, KeptApart
from data_manifests.schema import META_FILE, ManifestError, write_manifest

log = logging.getLogger(__name__)


def build_manifest(dataset: str, annotations_dir: str | Path, out_dir: str | Path, *,
                   videos_root: str | Path | None = None, **options: Any) -> Path:
    """Convert, validate and write; byte-identical output for identical source files.

    ``options`` go to the dataset's converter (e.g. ``split_index=2`` for breakfast).
    """
    if dataset not in CONVERTERS:
        raise ManifestError(f"unknown dataset {dataset!r}; known: {sorted(CONVERTERS)}")
    _refuse_other_dataset(Path(out_dir), dataset)
    kept_apart: list[KeptApart] = []
    meta, videos = CONVERTERS[dataset](
        Path(annotations_dir), videos_root=None if videos_root is None else Path(videos_root),
        kept_apart=kept_apart, **options)
    out = write_manifest((meta, videos), out_dir)
    tmp = out / (KEPT_APART_FILE + ".tmp")
    with tmp.open("w") as fh:
        for item in kept_apart:
            fh.write(json.dumps(item.to_json(), sort_keys=True, ensure_ascii=False,
                                separators=(",", ":")) + "\n")
    tmp.replace(out / KEPT_APART_FILE)
    log.info("%s: %d videos -> %s (%d annotations kept apart)", dataset, len(videos), out,
             len(kept_apart))
    return out


def _refuse_other_dataset(out: Path, dataset: str) -> None:
    """A folder may be rebuilt from the same dataset's files, never overwritten by another's."""
    meta = out / META_FILE
    if not meta.exists():
        return
    try:
        existing = json.loads(meta.read_text()).get("dataset")
    except (json.JSONDecodeError, AttributeError):
        existing = None
    if existing != dataset:
        raise FileExistsError(f"{out} holds a manifest of {existing or 'an unknown dataset'!s}, "
                              f"not {dataset} (see {meta}); choose another output folder or "
                              "delete this one")


def read_kept_apart(manifest_dir: str | Path) -> list[dict[str, Any]]:
    """The kept-apart annotations of a manifest folder (empty when it has none)."""
    path = Path(manifest_dir) / KEPT_APART_FILE
    if not path.exists():
        return []
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ManifestError(path, line_no, None, f"not JSON: {exc.msg}") from exc
    return out
