"""The in-RAM frame cache answers exactly what the streaming reader answers, and refuses
datasets too large for the machine before decoding anything."""

from __future__ import annotations

import pytest
import torch

from data_manifests.schema import load_manifest
from extract.training.frames import CachedFrames, StreamingFrames
from tests.extract.test_training_loop import config, write_tiny_dataset


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return load_manifest(write_tiny_dataset(tmp_path_factory.mktemp("frames"), num_videos=3))


def test_cached_reads_equal_streaming_reads_including_padding(manifest):
    cached = CachedFrames(manifest, None, progress=False)
    streaming = StreamingFrames(manifest, None)
    for video in manifest.videos:
        # Unsorted, repeated and past-the-end indices (padding repeats the last frame).
        indices = [3, 0, 0, video.num_frames - 1, video.num_frames + 7]
        a, b = cached(video, indices), streaming(video, indices)
        assert a.dtype == torch.uint8 and a.shape == (3, 5, 32, 32)
        assert torch.equal(a, b), video.video_id
        assert torch.equal(a[:, 4], a[:, 3])


def test_negative_index_is_an_error(manifest):
    cached = CachedFrames(manifest, None, progress=False)
    with pytest.raises(ValueError, match="non-negative"):
        cached(manifest.videos[0], [-1, 0])


def test_too_large_a_dataset_is_refused_before_decoding(manifest):
    with pytest.raises(MemoryError, match="cache_frames=false"):
        CachedFrames(manifest, None, max_fraction=1e-12, progress=False)


def test_training_with_the_cache_equals_training_from_files(manifest, tmp_path):
    from extract.training.loop import train

    root = manifest.root
    streamed = train(config(root, "train.mode=adaptfocus", "train.epochs=1"), tmp_path / "a")
    cached = train(config(root, "train.mode=adaptfocus", "train.epochs=1",
                          "data.cache_frames=true"), tmp_path / "b")
    a = torch.load(streamed / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(cached / "checkpoints" / "last.pt", weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["ase"]["state"], b["ase"]["state"])
