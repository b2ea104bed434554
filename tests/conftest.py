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


@pytest.fixture(autouse=True)
def _outside_a_slurm_array(monkeypatch):
    """`extract features` takes its shard from SLURM_ARRAY_* when --shard is not given: a
    suite run as a task of a SLURM array must not export only a part in every test."""
    for name in list(os.environ):
        if name.startswith("SLURM_ARRAY_"):
            monkeypatch.delenv(name)


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


@pytest.fixture(scope="session")
def s3_server() -> str:
    """A local S3-compatible server (moto) on 127.0.0.1, for this test process; its endpoint
    and dummy credentials are set in the environment (children inherit them). Yields the
    endpoint URL; each test makes its own bucket (:func:`s3_bucket`)."""
    from tests.s3_server import running_s3_server

    with running_s3_server() as endpoint:
        yield endpoint


@pytest.fixture()
def s3_bucket(s3_server) -> str:
    """A fresh bucket on the local S3 server: ``s3://NAME``."""
    import secrets

    import fsspec

    name = f"t-{secrets.token_hex(6)}"
    fsspec.filesystem("s3", use_listings_cache=False).mkdir(name)
    return f"s3://{name}"
