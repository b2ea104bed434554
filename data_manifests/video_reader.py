"""Read frames and clips from video files (mp4/H.264, GIF, anything FFmpeg decodes) with PyAV.

Frame indices live on a constant-rate grid: frame ``i`` is the picture on screen at time
``i / fps`` seconds after the stream start, where ``fps`` is the stream's *average* rate, i.e.
the latest decoded frame whose timestamp is ``<= i / fps``. For constant-frame-rate files (all
synthetic videos, most datasets) this is just the i-th decoded frame. For variable-frame-rate
files a frame is repeated where the source has a gap and skipped where it has a burst, and
``num_frames`` counts the grid (duration * average fps), so clip lengths in frames keep meaning
the same time span.

Random clip reads seek to the keyframe at or before the clip and decode from there, so the cost
of a clip does not grow with its position in a long video. Indices past the last frame repeat
the last frame (padding for videos shorter than one clip). Every failure raises
:class:`VideoReadError`, whose message names the file and the reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from data_manifests.errors import UserError

log = logging.getLogger(__name__)

# Seek again instead of decoding forward when the next wanted frame is this far ahead: decoding
# ~64 small frames costs about as much as one seek, and GOPs of real videos are <= ~300 frames.
_RESEEK_GAP = 64
# A stream that ends this many frames (or this fraction) before its declared length is truncated;
# fewer missing frames happen with honest files (rounded durations, dropped last frames).
_TRUNCATION_FRAMES = 2
_TRUNCATION_FRACTION = 0.01


class VideoReadError(UserError, RuntimeError):
    """A video file is missing, empty, truncated or cannot be decoded; names the file and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot read video {self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float  # average frames per second of the first video stream
    num_frames: int  # frames on the constant-rate grid (index i <-> time i / fps)
    duration: float  # seconds
    width: int  # pixels
    height: int  # pixels


def probe_video(path: str | Path) -> VideoInfo:
    """Stream facts without decoding pixels; raises :class:`VideoReadError` on a bad file."""
    path = Path(path)
    with _open(path) as (container, stream):
        fps, num_frames, duration = _timing(path, container, stream)
        return VideoInfo(path=path, fps=fps, num_frames=num_frames, duration=duration,
                         width=stream.codec_context.width, height=stream.codec_context.height)


def read_frames(path: str | Path, indices: Sequence[int]) -> torch.Tensor:
    """Frames at ``indices`` (any order, repeats allowed) as uint8 RGB ``(C, T, H, W)``.

    Indices ``>= num_frames`` repeat the last frame (documented padding); negative indices are
    an error.
    """
    path = Path(path)
    wanted = [int(i) for i in indices]
    if not wanted:
        raise ValueError(f"{path}: read_frames needs at least one frame index")
    if min(wanted) < 0:
        raise ValueError(f"{path}: negative frame index {min(wanted)}")
    with _open(path) as (container, stream):
        fps, num_frames, _ = _timing(path, container, stream)
        unique = sorted(set(wanted))
        got = dict(_frames_at(path, container, stream, fps, num_frames, unique))
    frames = np.stack([got[i] for i in wanted])  # (T, H, W, C)
    return torch.from_numpy(frames).permute(3, 0, 1, 2).contiguous()  # (C, T, H, W)


def read_clip(path: str | Path, start_frame: int, num_frames: int,
              stride: int = 1) -> torch.Tensor:
    """``num_frames`` frames from ``start_frame`` every ``stride`` frames: uint8 ``(C, T, H, W)``."""
    if num_frames < 1 or stride < 1:
        raise ValueError(f"{path}: read_clip needs num_frames >= 1 and stride >= 1, "
                         f"got {num_frames} and {stride}")
    return read_frames(path, range(start_frame, start_frame + num_frames * stride, stride))


def read_clip_at_time(path: str | Path, start_s: float, num_frames: int,
                      stride: int = 1) -> torch.Tensor:
    """Like :func:`read_clip` but starting at ``start_s`` seconds (index = time * average fps)."""
    fps = probe_video(path).fps
    return read_clip(path, math.floor(start_s * fps + 1e-6), num_frames, stride)


def iter_frames(path: str | Path, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Stream frames ``start .. stop-1`` (default: to the end) as uint8 RGB ``(H, W, C)``.

    Holds one decoded frame at a time, so memory does not grow with the video's length.
    """
    path = Path(path)
    if start < 0:
        raise ValueError(f"{path}: negative start frame {start}")
    with _open(path) as (container, stream):
        fps, num_frames, _ = _timing(path, container, stream)
        stop = num_frames if stop is None else min(stop, num_frames)
        for _, frame in _frames_at(path, container, stream, fps, num_frames, range(start, stop)):
            yield frame


# ---------------------------------------------------------------------------------------------


class _open:
    """Context manager: (container, first video stream), every failure as VideoReadError."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        path = self.path
        if not path.exists():
            raise VideoReadError(path, "file does not exist")
        if not path.is_file():
            raise VideoReadError(path, "not a regular file")
        if path.stat().st_size == 0:
            raise VideoReadError(path, "file is empty (0 bytes)")
        try:
            self.container = av.open(str(path), mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoReadError(path, f"not a decodable video (truncated or corrupt?): "
                                       f"{exc}") from exc
        if not self.container.streams.video:
            self.container.close()
            raise VideoReadError(path, "has no video stream")
        stream = self.container.streams.video[0]
        # One decoder thread: readers run inside data-loader workers that already use the cores.
        stream.codec_context.thread_count = 1
        return self.container, stream

    def __exit__(self, *exc_info: object) -> None:
        self.container.close()


def _timing(path: Path, container: av.container.InputContainer,
            stream: av.video.stream.VideoStream) -> tuple[float, int, float]:
    """(average fps, frames on the fps grid, duration s) from the container headers."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise VideoReadError(path, "stream declares no frame rate")
    fps = float(rate)
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    num_frames = stream.frames
    if num_frames <= 0:
        if duration is None:
            num_frames = sum(1 for p in container.demux(stream) if p.size > 0)
            container.seek(0, stream=stream)
        else:
            num_frames = round(duration * fps)
    if duration is None or duration <= 0:
        duration = num_frames / fps
    if num_frames <= 0:
        raise VideoReadError(path, "stream holds no frames")
    return fps, num_frames, duration


def _frames_at(path: Path, container: av.container.InputContainer,
               stream: av.video.stream.VideoStream, fps: float, num_frames: int,
               indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, (H, W, C) uint8)`` for ascending unique ``indices`` on the fps grid.

    ``indices`` is only indexed, never copied, so a ``range`` costs no memory.
    """
    targets = indices
    if not targets:
        return
    start_time = float(stream.start_time * stream.time_base) if stream.start_time else 0.0

    def decode_from(index: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decoded frames with their grid index, starting at the keyframe before ``index``."""
        if index > 0:
            # Seconds -> stream ticks; backward=True lands on the keyframe at or before the time.
            ticks = math.floor((start_time + index / fps) / stream.time_base)
            try:
                container.seek(max(ticks, 0), backward=True, any_frame=False, stream=stream)
            except av.FFmpegError as exc:
                log.debug("%s: seek to frame %d failed (%s); decoding from the start",
                          path, index, exc)
                container.seek(0, stream=stream)
        else:
            container.seek(0, stream=stream)
        previous = -1
        for frame in container.decode(stream):
            if frame.time is None:  # no timestamp (rare raw streams): count frames
                previous += 1
            else:
                # First grid index at which this frame is on screen (1e-3: float slack).
                previous = math.ceil((frame.time - start_time) * fps - 1e-3)
            yield previous, frame

    k = 0  # next wanted target
    last: tuple[int, av.VideoFrame] | None = None  # newest decoded frame at or before targets[k]
    from_start = targets[0] <= _RESEEK_GAP
    sought = 0 if from_start else targets[0]  # the target of the newest seek
    frames = decode_from(sought)
    try:
        while k < len(targets):
            item = next(frames, None)
            if item is None:
                break
            index, frame = item
            if last is None and index > targets[k] and not from_start:
                # The seek landed after the wanted frame (inexact index): decode from the start.
                from_start, frames = True, decode_from(0)
                continue
            if index > targets[k]:
                # Wanted indices before this frame show the previous frame (the latest one at or
                # before them); before the first frame of the stream, the first frame.
                shown = (last[1] if last is not None else frame).to_ndarray(format="rgb24")
                while k < len(targets) and index > targets[k]:
                    yield targets[k], shown
                    k += 1
            last = (index, frame)
            if k < len(targets) and targets[k] - index > _RESEEK_GAP and targets[k] > sought:
                # Far ahead: seek (once per target, since formats without an index, e.g.
                # GIF, land far before it and must decode forward anyway).
                sought = targets[k]
                from_start, last, frames = False, None, decode_from(sought)
    except av.FFmpegError as exc:
        raise VideoReadError(path, f"decoding failed after frame "
                                   f"{last[0] if last else -1}: {exc}") from exc
    if k == len(targets):
        return
    if last is None:
        raise VideoReadError(path, f"no frame could be decoded at or before frame {targets[k]}")
    missing = min(targets[k], num_frames - 1) - last[0]
    if missing > max(_TRUNCATION_FRAMES, _TRUNCATION_FRACTION * num_frames):
        raise VideoReadError(path, f"truncated: the stream ends at frame {last[0]} but declares "
                                   f"{num_frames} frames")
    padding = last[1].to_ndarray(format="rgb24")  # past the end: repeat the last frame
    for target in targets[k:]:
        yield target, padding
