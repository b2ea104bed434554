"""Pixels of the synthetic benchmark: scene backgrounds and anti-aliased actor shapes.

A *look* (palette + texture family + shape set) decides appearance only; motion lives in
``motions.py``. The ``target`` and ``source`` looks share nothing but the rendering method, so a
backbone pre-trained on ``source`` must transfer motion, not appearance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_manifests.config import ConfigError

# Shapes as unions of convex polygons, vertices clockwise on screen (y down), unit size ~1.
# None is rotationally symmetric beyond 90 degrees, so spinning is visible on every actor.
SHAPES: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {
    "square": (((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)),),
    "triangle": (((0.0, -0.6), (0.55, 0.45), (-0.55, 0.45)),),
    "bar": (((-0.65, -0.22), (0.65, -0.22), (0.65, 0.22), (-0.65, 0.22)),),
    "cross": (((-0.6, -0.18), (0.6, -0.18), (0.6, 0.18), (-0.6, 0.18)),
              ((-0.18, -0.6), (0.18, -0.6), (0.18, 0.6), (-0.18, 0.6))),
    "ell": (((-0.5, -0.6), (-0.15, -0.6), (-0.15, 0.6), (-0.5, 0.6)),
            ((-0.15, 0.25), (0.5, 0.25), (0.5, 0.6), (-0.15, 0.6))),
    "kite": (((0.0, -0.65), (0.4, -0.1), (0.0, 0.6), (-0.4, -0.1)),),
}


@dataclass(frozen=True)
class Look:
    shapes: tuple[str, ...]  # actor shapes
    actor_colors: dict[str, tuple[int, int, int]]  # colour name -> RGB, bright
    scene_colors: tuple[tuple[int, int, int], ...]  # background base colours, darker
    texture: str  # "stripes" | "checker" | "rings"


LOOKS: dict[str, Look] = {
    "target": Look(
        shapes=("square", "triangle", "bar"),
        actor_colors={"red": (235, 40, 40), "green": (40, 220, 60), "blue": (60, 90, 255),
                      "yellow": (240, 230, 40), "white": (245, 245, 245)},
        scene_colors=((70, 50, 40), (40, 70, 50), (45, 50, 85), (80, 75, 40), (70, 40, 75),
                      (40, 75, 80), (60, 60, 60), (90, 55, 30)),
        texture="stripes"),
    "source": Look(
        shapes=("cross", "ell", "kite"),
        actor_colors={"orange": (250, 150, 30), "pink": (250, 120, 200), "cyan": (60, 230, 230),
                      "lime": (170, 250, 60), "violet": (170, 110, 250)},
        scene_colors=((30, 30, 60), (60, 30, 30), (30, 55, 30), (50, 45, 25), (25, 45, 50),
                      (45, 25, 50)),
        texture="checker"),
}

_SUPERSAMPLE = 3  # sub-pixels per pixel side for anti-aliasing


@dataclass(frozen=True)
class Scene:
    color: tuple[float, float, float]  # base RGB
    texture_angle: float  # rad
    texture_freq: float  # cycles per frame width
    texture_contrast: float  # 0-255 amplitude


def make_scene(look: Look, scene_id: int, rng: np.random.Generator) -> Scene:
    """Scene ``scene_id`` of a look, with a little per-video variation from ``rng``."""
    base = np.array(look.scene_colors[scene_id % len(look.scene_colors)], dtype=float)
    # Scenes beyond the colour list differ by texture; each scene has its own angle and freq.
    angle = (scene_id * 0.7) % np.pi
    freq = 2.0 + (scene_id * 1.3) % 3.0
    return Scene(color=tuple(base + rng.normal(0, 6, 3)),
                 texture_angle=float(angle + rng.normal(0, 0.08)),
                 texture_freq=float(freq * rng.uniform(0.9, 1.1)),
                 texture_contrast=float(rng.uniform(12, 22)))


def render_background(scene: Scene, texture: str, size: int) -> np.ndarray:
    """Static background ``(H, W, 3)`` float32 in 0-255."""
    coords = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    if texture == "stripes":
        u = x * np.cos(scene.texture_angle) + y * np.sin(scene.texture_angle)
        pattern = np.sin(2 * np.pi * scene.texture_freq * u)
    elif texture == "checker":
        f = scene.texture_freq
        pattern = np.sign(np.sin(2 * np.pi * f * x + scene.texture_angle)
                          * np.sin(2 * np.pi * f * y))
    elif texture == "rings":
        r = np.hypot(x - 0.5, y - 0.5)
        pattern = np.sin(2 * np.pi * scene.texture_freq * r + scene.texture_angle)
    else:
        raise ConfigError(f"unknown texture family {texture!r}; known: stripes, checker, rings")
    lum = pattern[..., None] * scene.texture_contrast
    return (np.asarray(scene.color)[None, None, :] + lum).astype(np.float32)


def actor_alpha(shape: str, size: float, x: np.ndarray, y: np.ndarray, angle: np.ndarray,
                log_scale: np.ndarray, frame_size: int) -> np.ndarray:
    """Coverage ``(T, H, W)`` float32 in [0, 1] of one actor over ``T`` frames.

    ``x, y`` (T,) centre in frame widths (torus), ``angle`` (T,) rad, ``log_scale`` (T,),
    ``size`` the base size in frame widths. Only a window around the actor is rasterized.
    """
    s, t = _SUPERSAMPLE, len(x)
    reach = _REACH[shape] * size * float(np.exp(np.max(log_scale))) * frame_size  # pixels
    win = min(frame_size, 2 * int(np.ceil(reach)) + 2)  # window side, pixels
    left = np.floor(np.asarray(x) * frame_size).astype(int) - win // 2  # (T,) window corner
    top = np.floor(np.asarray(y) * frame_size).astype(int) - win // 2
    sub = ((np.arange(win * s) + 0.5) / s).astype(np.float32)  # sub-pixel centres in the window
    # Offsets from the centre in frame widths, wrapped to [-0.5, 0.5) (objects re-enter on
    # the other side of the torus).
    dx = ((left[:, None] + sub[None]) / frame_size - x[:, None] + 0.5) % 1.0 - 0.5  # (T, n)
    dy = ((top[:, None] + sub[None]) / frame_size - y[:, None] + 0.5) % 1.0 - 0.5
    dx, dy = dx[:, None, :], dy[:, :, None]  # (T, 1, n), (T, n, 1)
    scale = (size * np.exp(log_scale))[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    # Into the actor's frame: undo the clockwise rotation, then the scale.
    lx = ((cos * dx + sin * dy) / scale).astype(np.float32)  # (T, n, n)
    ly = ((-sin * dx + cos * dy) / scale).astype(np.float32)
    inside = np.zeros(lx.shape, dtype=bool)
    for polygon in SHAPES[shape]:
        part = np.ones(lx.shape, dtype=bool)
        for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1]):
            part &= (x1 - x0) * (ly - y0) - (y1 - y0) * (lx - x0) >= 0
        inside |= part
    window = inside.reshape(t, win, s, win, s).mean(axis=(2, 4), dtype=np.float32)
    out = np.zeros((t, frame_size, frame_size), dtype=np.float32)
    rows = (top[:, None] + np.arange(win)[None]) % frame_size  # (T, win)
    cols = (left[:, None] + np.arange(win)[None]) % frame_size
    out[np.arange(t)[:, None, None], rows[:, :, None], cols[:, None, :]] = window
    return out


# Farthest vertex of each shape from its centre (unit size): bounds the raster window.
_REACH: dict[str, float] = {name: max(float(np.hypot(*v)) for poly in polys for v in poly)
                            for name, polys in SHAPES.items()}
