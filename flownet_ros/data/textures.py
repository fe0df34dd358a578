"""Procedural colour textures for the synthetic flow generator (no files, no downloads).

Every function takes a ``numpy.random.Generator`` and is deterministic given its state. Kinds
(see :func:`random_texture`):

- ``noise``: multi-octave value noise whose per-octave amplitude ~ cell_size^beta, beta in
  [0, 0.7] (beta = 0 is the scale-invariant 1/f amplitude spectrum of natural images), mapped
  between two slowly varying colour fields;
- ``leaves``: a "dead leaves" image (occluding discs, ellipses, polygons and bars with a 1/r^3
  size law, the classic model of natural-image statistics) over a noise base;
- ``stripes`` / ``checker``: periodic patterns in rotated, noise-warped coordinates;
- ``gradient``: a colour gradient with noise shading.
Every kind is finally shaded towards a third colour field by a noise field, so no region is
perfectly flat. Colour mixing uses ``cv2.blendLinear`` on uint8 images (fast).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

KINDS = ("noise", "leaves", "stripes", "checker", "gradient")
KIND_PROBS = (0.3, 0.4, 0.12, 0.1, 0.08)
#: backgrounds fill most of the image: mostly natural-statistics kinds (periodic ones are ambiguous)
BACKGROUND_PROBS = (0.35, 0.5, 0.05, 0.04, 0.06)


def pyramid_noise(rng: np.random.Generator, h: int, w: int, beta: float, finest: int = 1) -> np.ndarray:
    """Zero-mean, unit-std float32 noise [h,w] with per-octave amplitude ~ (2^level)^beta.

    Built coarse-to-fine: start from a few random values, repeatedly upsample x2 (bilinear) and
    add fresh random values; ``finest`` = log2 of the smallest cell size in pixels.
    """
    levels = max(finest, int(np.ceil(np.log2(max(h, w)))) - 1)
    acc = None
    for level in range(levels, finest - 1, -1):
        lh = max(2, int(np.ceil(h / 2 ** level)) + 1)
        lw = max(2, int(np.ceil(w / 2 ** level)) + 1)
        fresh = rng.standard_normal((lh, lw), dtype=np.float32)
        fresh *= np.float32(2.0 ** (level * beta))
        if acc is None:
            acc = fresh
        else:
            acc = cv2.resize(acc, (lw, lh), interpolation=cv2.INTER_LINEAR)
            acc += fresh
    out = cv2.resize(acc, (w, h), interpolation=cv2.INTER_LINEAR)
    mean, std = cv2.meanStdDev(out)
    out -= np.float32(mean[0, 0])
    out *= np.float32(1.0 / (std[0, 0] + 1e-6))
    return out


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """One RGB colour (float 0..255) with random brightness and saturation."""
    c = rng.uniform(0, 255, 3)
    grey = c.mean()
    return np.clip(grey + rng.uniform(0.0, 0.9) * (c - grey), 0, 255)


def colour_field(rng: np.random.Generator, h: int, w: int, variation: float = 40.0) -> np.ndarray:
    """uint8 [h,w,3]: a random colour that varies slowly over the image (low-frequency)."""
    grid = np.clip(random_colour(rng) + rng.normal(0, variation, (3, 3, 3)), 0, 255).astype(np.uint8)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)


def _blend(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel a*(1-t) + b*t for uint8 [h,w,3] a, b and float32 [h,w] t in [0,1]."""
    return cv2.blendLinear(a, b, np.float32(1.0) - t, t)


def _unit(x: np.ndarray) -> np.ndarray:
    np.clip(x, 0.0, 1.0, out=x)
    return x


def _rotated_coords(rng: np.random.Generator, h: int, w: int):
    """Pixel coordinates rotated by a random angle: (along, across), each float32 [h,w]."""
    angle = rng.uniform(0, np.pi)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    return c * xs + s * ys, c * ys - s * xs


def _leaves(rng: np.random.Generator, h: int, w: int, img: np.ndarray) -> np.ndarray:
    """Draw dead-leaves shapes onto uint8 [h,w,3] ``img`` in place (big shapes first)."""
    rmin, rmax = 2.0, max(4.0, 0.3 * max(h, w))
    n = int(rng.integers(150, 400) * max(0.15, h * w / (384 * 512)))
    radii = np.sort(rmin * (rmax / rmin) ** rng.power(0.6, n))[::-1]  # many small, heavy tail of big
    palette = np.array([random_colour(rng) for _ in range(int(rng.integers(3, 8)))])
    cols = np.clip(palette[rng.integers(len(palette), size=n)] + rng.normal(0, 25, (n, 3)), 0, 255).tolist()
    cx = rng.uniform(-0.1 * w, 1.1 * w, n).astype(int).tolist()
    cy = rng.uniform(-0.1 * h, 1.1 * h, n).astype(int).tolist()
    shapes = rng.random(n).tolist()
    aspect = rng.uniform(0.2, 1.0, n).tolist()
    angle = rng.uniform(0, 180, n).tolist()
    for i, r in enumerate(radii.tolist()):
        centre, col, shape = (cx[i], cy[i]), cols[i], shapes[i]
        if shape < 0.4:
            cv2.circle(img, centre, max(1, int(r)), col, -1, cv2.LINE_AA)
        elif shape < 0.75:
            axes = (max(1, int(r)), max(1, int(r * aspect[i])))
            cv2.ellipse(img, centre, axes, angle[i], 0, 360, col, -1, cv2.LINE_AA)
        elif shape < 0.9:
            box = (centre, (2 * r, 2 * r * aspect[i]), angle[i])
            cv2.fillPoly(img, [cv2.boxPoints(box).astype(np.int32)], col, cv2.LINE_AA)
        else:
            a = np.radians(angle[i])
            dx, dy = int(np.cos(a) * r), int(np.sin(a) * r)
            cv2.line(img, (centre[0] - dx, centre[1] - dy), (centre[0] + dx, centre[1] + dy), col,
                     max(1, int(r * aspect[i] * 0.25)), cv2.LINE_AA)
    return img


def random_texture(rng: np.random.Generator, h: int, w: int, kind: str = None,
                   probs: Sequence[float] = KIND_PROBS) -> np.ndarray:
    """A random colour texture: uint8 [h,w,3] RGB. ``kind`` in :data:`KINDS`, or None = drawn
    with probabilities ``probs`` (one per kind)."""
    if kind is None:
        kind = KINDS[int(rng.choice(len(KINDS), p=probs))]
    if kind not in KINDS:
        raise ValueError(f"unknown texture kind {kind!r}; choose from {KINDS}")
    lum = pyramid_noise(rng, h, w, rng.uniform(0.0, 0.7), finest=1)
    # an independent-looking shading field for free: the noise rotated by 180 degrees
    shade = np.abs(lum[::-1, ::-1]) * np.float32(rng.uniform(0.02, 0.15))
    c0 = colour_field(rng, h, w)
    c1 = colour_field(rng, h, w)
    if kind == "noise":
        lum *= np.float32(rng.uniform(0.15, 0.8))
        lum += np.float32(0.5)
        img = _blend(c0, c1, _unit(lum))
    elif kind == "leaves":
        lum *= np.float32(0.15)
        lum += np.float32(0.5)
        img = _leaves(rng, h, w, _blend(c0, c1, _unit(lum)))
    elif kind in ("stripes", "checker"):
        a, b = _rotated_coords(rng, h, w)
        period = float(np.exp(rng.uniform(np.log(8.0), np.log(64.0))))  # px, well above Nyquist
        warp = np.float32(rng.uniform(0, 0.3) * period)
        a = a + warp * lum
        p = np.sin(np.float32(2 * np.pi / period) * a)
        if kind == "checker":
            p *= np.sin(np.float32(2 * np.pi / period) * (b + warp * lum))
        p *= np.float32(rng.uniform(0.6, 4.0))
        p += np.float32(0.5)
        img = _blend(c0, c1, _unit(p))
    else:  # gradient
        a, _ = _rotated_coords(rng, h, w)
        span = max(float(np.abs(a).max()), 1.0)
        t = (a + np.float32(span)) * np.float32(0.5 / span) + np.float32(rng.uniform(0.02, 0.15)) * lum
        img = _blend(c0, c1, _unit(t))
    return _blend(img, colour_field(rng, h, w, variation=80.0), _unit(shade))
