"""Shared fixtures. Tests run on 2 cores under pytest-xdist: one torch thread per worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
# The official annotation files live beside the checkout, never inside it (licences).
ANNOTATIONS = Path(os.environ.get("WEAKFEAT_ANNOTATIONS", REPO.parent / "shared/data/annotations"))
KINETICS_SAMPLE = REPO.parent / "shared/data/kinetics_i3d_sample"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def annotations_root() -> Path:
    """Folder of the official annotation files; tests that need it skip when it is absent."""
    if not ANNOTATIONS.is_dir():
        pytest.skip(f"official annotation files not found at {ANNOTATIONS} "
                    "(set WEAKFEAT_ANNOTATIONS to their folder)")
    return ANNOTATIONS


@pytest.fixture(scope="session")
def kinetics_sample() -> Path:
    if not KINETICS_SAMPLE.is_dir():
        pytest.skip(f"Kinetics I3D sample clip not found at {KINETICS_SAMPLE}")
    return KINETICS_SAMPLE
