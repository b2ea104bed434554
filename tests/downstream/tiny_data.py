"""The tiny localization-shaped data most stage-2 tests train on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from data_manifests.schema import Manifest, write_manifest
from downstream.data.synthetic import SyntheticFeatures, thumos_like_manifest, write_store


def tiny_manifest(activities: bool = True) -> Manifest:
    """12 videos of 25-40 s, 1-3 instances of 3 classes; alternately "cook" and "wash" videos
    when ``activities`` (POC draws each batch from one activity)."""
    manifest = thumos_like_manifest(num_videos=12, num_classes=3, seed=0, duration=(25.0, 40.0),
                                    instances=(1, 3), length=(3.0, 6.0))
    if not activities:
        return manifest
    names = ("cook", "wash")
    return Manifest(replace(manifest.meta, activities=names),
                    tuple(replace(v, activity=names[i % 2])
                          for i, v in enumerate(manifest.videos)))


def write_tiny(root: Path, manifest: Manifest | None = None) -> tuple[Manifest, Path, Path]:
    """``manifest`` (default :func:`tiny_manifest`) written under ``root`` with an 8-d store:
    (manifest, manifest folder, store path)."""
    manifest = manifest or tiny_manifest()
    manifest_dir = write_manifest(manifest, root / "manifest")
    store = write_store(manifest, root / "features.zarr", SyntheticFeatures(dim=8), seed=0)
    return manifest, manifest_dir, store
