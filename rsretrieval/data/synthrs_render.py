"""Rendering a synthrs scene to pixels: textured land cover, regions, then objects with shadows."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from rsretrieval.data.synthrs_scenes import COLORS, LAND_COVER, Z_ORDER, SceneObject2D, SceneSpec, region_mask


def _noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    low = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(low, mode="F").resize((n, n), Image.BICUBIC), dtype=np.float32)


def _draw_object(d: ImageDraw.ImageDraw, o: SceneObject2D) -> None:
    rgb = COLORS[o.color]
    dark = tuple(int(c * .78) for c in rgb)
    shadow = (28, 30, 28)
    if o.shape == "circle":
        r = o.w / 2
        if o.kind != "car":
            d.ellipse([o.x - r + 1.5, o.y - r + 1.5, o.x + r + 1.5, o.y + r + 1.5], fill=shadow)
        d.ellipse([o.x - r, o.y - r, o.x + r, o.y + r], fill=rgb)
        if o.kind == "storage tank" and r >= 5:
            d.ellipse([o.x - r * .55, o.y - r * .55, o.x + r * .55, o.y + r * .55], outline=dark, width=1)
        return
    if o.shape == "line":
        d.line(o.polygon(), fill=rgb, width=int(round(o.w)))
        return
    poly = o.polygon()
    if o.angle % 90 == 0:  # axis-parallel: exactly round(w) x round(h) pixels (PIL polygons include their edge)
        w, h = (o.w, o.h) if o.angle % 180 == 0 else (o.h, o.w)
        x0, y0 = math.floor(o.x - w / 2 + .5), math.floor(o.y - h / 2 + .5)
        x1, y1 = x0 + round(w) - 1, y0 + round(h) - 1
        poly = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if o.kind in ("terminal building", "warehouse", "building", "house", "plane", "ship", "container"):
        off = 2.5 if o.kind != "container" else 1.0
        d.polygon([(x + off, y + off) for x, y in poly], fill=shadow)
    d.polygon(poly, fill=rgb)
    if o.kind in ("house", "warehouse"):  # roof ridge
        a = math.radians(o.angle)
        dx, dy = -math.sin(a) * o.h * .5, math.cos(a) * o.h * .5
        d.line([(o.x - dx, o.y - dy), (o.x + dx, o.y + dy)], fill=dark, width=1)
    elif o.kind in ("tennis court", "soccer field", "runway"):
        inset = SceneObject2D(o.kind, o.x, o.y, o.w - 4, o.h - 4, o.angle)
        d.polygon(inset.polygon(), outline=(235, 235, 235))
        p = inset.polygon()
        d.line([((p[0][0] + p[3][0]) / 2, (p[0][1] + p[3][1]) / 2), ((p[1][0] + p[2][0]) / 2, (p[1][1] + p[2][1]) / 2)],
               fill=(235, 235, 235), width=1)
    elif o.kind == "running track":
        inset = SceneObject2D(o.kind, o.x, o.y, o.w - 10, o.h - 10, o.angle)
        d.polygon(inset.polygon(), outline=(235, 235, 235))


def render_scene(spec: SceneSpec) -> np.ndarray:
    """The RGB image (``size x size x 3``, uint8) of a scene; deterministic given the spec."""
    n = spec.size
    rng = np.random.default_rng(spec.texture_seed)
    fine = rng.standard_normal((n, n), dtype=np.float32)
    low = _noise(rng, n, 12)
    colour, amp = LAND_COVER[spec.background]
    out = np.empty((n, n, 3), np.float32)
    out[:] = colour
    tex = np.full((n, n), amp, np.float32)
    for r in spec.regions:
        m = region_mask(r, n)
        out[m] = LAND_COVER[r.kind][0]
        tex[m] = LAND_COVER[r.kind][1]
    shade = (low * 0.6 + fine * np.where(tex > 15, 1.0, 0.35)) * tex
    out += shade[..., None]
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for o in sorted(spec.objects, key=lambda o: Z_ORDER.index(o.kind)):
        _draw_object(d, o)
    arr = np.asarray(img, dtype=np.int16) + rng.integers(-2, 3, (n, n, 1), dtype=np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)
