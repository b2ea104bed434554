"""Video reading: frame indexing, seeking, padding, VFR, GIF, and clear errors for bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from data_manifests.synthetic.encode import write_mp4
from data_manifests.video_reader import (
    VideoReadError,
    iter_frames,
    probe_video,
    read_clip,
    read_frames,
)

GIF = "v_CricketShot_g04_c01_rgb.gif"


def _gray(i: int) -> np.ndarray:
    """Frame ``i`` of a test video: ``i`` in binary, one 4-pixel column band per bit.

    Black/white bands survive H.264 and RGB <-> YUV rounding exactly.
    """
    bits = [(i >> b) & 1 for b in range(8)]
    row = np.repeat(np.array(bits, dtype=np.uint8) * 255, 4)  # (32,)
    return np.broadcast_to(row[None, :, None], (32, 32, 3)).copy()


def _index_of(frames: torch.Tensor) -> list[int]:
    """Inverse of :func:`_gray` for a (C, T, H, W) clip."""
    bands = frames.float().mean(dim=(0, 2)).reshape(frames.shape[1], 8, 4).mean(dim=2)
    bits = (bands > 128).long()  # (T, 8)
    return [int((row * (2 ** torch.arange(8))).sum()) for row in bits]


@pytest.fixture(scope="module")
def counting_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "count.mp4"
    write_mp4(path, [np.stack([_gray(i) for i in range(110)])], fps=10.0, size=32, gop=8, crf=0)
    return path


def test_probe_mp4(counting_mp4: Path) -> None:
    info = probe_video(counting_mp4)
    assert (info.fps, info.num_frames, info.width, info.height) == (10.0, 110, 32, 32)
    assert info.duration == pytest.approx(11.0, abs=0.11)


def test_read_clip_and_random_order(counting_mp4: Path) -> None:
    clip = read_clip(counting_mp4, 90, 8, stride=2)  # seeks: far from the start
    assert clip.shape == (3, 8, 32, 32) and clip.dtype == torch.uint8
    # 90, 92, ..., 104, then past the end (110 frames) the last frame repeats
    assert _index_of(clip) == [90, 92, 94, 96, 98, 100, 102, 104]
    assert _index_of(read_clip(counting_mp4, 104, 5, stride=2)) == [104, 106, 108, 109, 109]
    wanted = [100, 3, 3, 70, 0, 109, 250]
    assert _index_of(read_frames(counting_mp4, wanted)) == [100, 3, 3, 70, 0, 109, 109]


def test_iter_frames_streams_the_same_frames(counting_mp4: Path) -> None:
    frames = list(iter_frames(counting_mp4, start=97, stop=105))
    assert len(frames) == 8 and frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8
    stacked = torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)
    assert torch.equal(stacked, read_frames(counting_mp4, range(97, 105)))
    assert len(list(iter_frames(counting_mp4))) == 110


def test_negative_index_is_an_error(counting_mp4: Path) -> None:
    with pytest.raises(ValueError, match="negative"):
        read_frames(counting_mp4, [3, -1])


def test_variable_frame_rate_maps_time_to_index(tmp_path: Path) -> None:
    # 10 fps with frames 5..9 missing: the reader places frames by time on the average-fps grid
    # and shows the latest frame for an index that falls into the gap.
    path = tmp_path / "vfr.mp4"
    times_ms = [i * 100 for i in range(30) if not 5 <= i < 10]
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "0", "bf": "0"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(_gray(t // 100), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    info = probe_video(path)
    frames = torch.from_numpy(np.stack(list(iter_frames(path)))).permute(3, 0, 1, 2)
    assert frames.shape[1] == info.num_frames
    shown = _index_of(frames)
    assert shown == sorted(shown), "time order kept"
    assert set(shown) <= {t // 100 for t in times_ms}, "only real frames are shown"
    # Index i shows the latest source frame at or before time i / fps.
    for index, value in enumerate(shown):
        expected = max(s for s in times_ms if s / 1000 * info.fps <= index + 1e-6) // 100
        assert value == expected
    assert _index_of(read_frames(path, [7, 2])) == [shown[7], shown[2]]


def test_gif(kinetics_sample: Path) -> None:
    path = kinetics_sample / GIF
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (79, 224, 224)
    video = read_frames(path, range(79))
    assert video.shape == (3, 79, 224, 224) and video.dtype == torch.uint8
    assert video.float().std() > 10, "real pixels, not a blank"
    some = read_frames(path, [78, 5, 70])
    assert torch.equal(some, video[:, [78, 5, 70]])


def _bad_files(tmp: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {"missing": tmp / "missing.mp4", "empty": tmp / "empty.mp4",
             "garbage": tmp / "garbage.mp4", "truncated": tmp / "truncated.mp4"}
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(b"this is not a video" * 100)
    files["truncated"].write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    return files


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated"])
def test_bad_files_raise_video_read_error(kind: str, tmp_path: Path, counting_mp4: Path) -> None:
    path = _bad_files(tmp_path, counting_mp4)[kind]
    for call in (lambda: probe_video(path), lambda: read_clip(path, 0, 4),
                 lambda: list(iter_frames(path))):
        with pytest.raises(VideoReadError) as err:
            call()
        assert str(path) in str(err.value)
    reasons = {"missing": "does not exist", "empty": "empty", "garbage": "not a decodable",
               "truncated": "not a decodable"}
    assert reasons[kind] in str(err.value)


def test_truncated_stream_with_index_in_front(tmp_path: Path) -> None:
    # "faststart" files carry the index first: they open, then the data runs out.
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=10, options={"crf": "0", "g": "8"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(100):
            frame = av.VideoFrame.from_ndarray(_gray(i), format="rgb24").reformat(
                format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    assert probe_video(cut).num_frames == 100
    with pytest.raises(VideoReadError, match="truncated") as err:
        read_clip(cut, 90, 4)
    assert str(cut) in str(err.value)


def test_iter_frames_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    import tracemalloc

    peaks = []
    for count in (60, 600):
        path = tmp_path / f"len{count}.mp4"
        write_mp4(path, (np.stack([_gray(i % 256) for i in range(j, min(j + 50, count))])
                         for j in range(0, count, 50)), fps=10.0, size=32, gop=8,
                  crf=20)
        tracemalloc.start()
        seen = sum(1 for _ in iter_frames(path))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert seen == count
    # 540 more frames of 3 KB would add 1.6 MB if frames were kept.
    assert peaks[1] < peaks[0] + 200_000, peaks
