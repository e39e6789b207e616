"""synthrs' world: object and region types, the scene samplers per scene type, region masks.

Separate from the renderer (:mod:`rsretrieval.data.synthrs_render`), the caption writer
(:mod:`rsretrieval.data.synthrs_text`) and the dataset builder (:mod:`rsretrieval.data.synthrs`), which
all read these types. A scene depends only on the generator it is sampled with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

SCENE_TYPES = ("airport", "industrial", "port", "residential", "parking", "farmland", "sports", "forest", "river")
COLORS: dict[str, tuple[int, int, int]] = {
    "white": (236, 236, 230), "light gray": (185, 185, 182), "gray": (128, 128, 126), "dark gray": (78, 78, 82),
    "black": (32, 32, 36), "red": (178, 52, 42), "blue": (52, 92, 172), "green": (62, 128, 58),
    "light green": (138, 178, 88), "yellow": (214, 190, 82), "brown": (118, 84, 56), "orange": (208, 122, 52),
    "beige": (206, 190, 152), "dark green": (34, 74, 38), "teal": (40, 130, 130),
}
LAND_COVER: dict[str, tuple[tuple[int, int, int], float]] = {  # name -> (colour, texture amplitude)
    "grass": ((96, 132, 66), 10.0), "bare ground": ((152, 126, 96), 9.0), "sand": ((206, 192, 152), 6.0),
    "forest": ((38, 78, 40), 22.0), "water": ((40, 76, 112), 4.0), "river": ((46, 84, 108), 5.0),
}
Z_ORDER = ("field", "runway", "apron", "parking lot", "dock", "running track", "soccer field", "tennis court",
           "road", "swimming pool", "terminal building", "warehouse", "building", "house", "storage tank",
           "container", "ship", "plane", "car", "tree")
AREA_KINDS = frozenset(Z_ORDER[:8])  # surfaces other objects can stand on


@dataclass
class SceneObject2D:
    """One countable object: centre (x right, y down = south), width across and length along its axis."""

    kind: str
    x: float
    y: float
    w: float
    h: float
    angle: float = 0.0  # degrees, 0 = long axis north-south
    color: str = "gray"
    size: str = "medium"
    shape: str = "rect"  # rect / circle / plane / ship / line

    def polygon(self) -> list[tuple[float, float]]:
        """Outline in image coordinates (for ``line`` the two end points)."""
        hw, hh = self.w / 2, self.h / 2
        if self.shape == "plane":
            f, s, c = self.h * 0.09, self.h * 0.48, self.h * 0.1
            pts = [(-f, -hh), (f, -hh), (f, -c), (s, 0), (s, c), (f, c), (f, hh * .7), (hh * .35, hh), (-hh * .35, hh),
                   (-f, hh * .7), (-f, c), (-s, c), (-s, 0), (-f, -c)]
        elif self.shape == "ship":
            pts = [(0, -hh), (hw, -hh * .45), (hw, hh), (-hw, hh), (-hw, -hh * .45)]
        elif self.shape == "line":
            pts = [(0, -hh), (0, hh)]
        else:
            pts = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
        a = math.radians(self.angle)
        ca, sa = math.cos(a), math.sin(a)
        return [(self.x + px * ca - py * sa, self.y + px * sa + py * ca) for px, py in pts]

    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the outline (circles: of the circle)."""
        if self.shape == "circle":
            r = self.w / 2
            return self.x - r, self.y - r, self.x + r, self.y + r
        p = np.asarray(self.polygon())
        pad = self.w / 2 if self.shape == "line" else 0.0
        return p[:, 0].min() - pad, p[:, 1].min() - pad, p[:, 0].max() + pad, p[:, 1].max() + pad


@dataclass
class Region:
    """An uncountable land-cover region (water, forest, river, ...): a polygon or a thick polyline."""

    kind: str
    points: list[tuple[float, float]]
    width: float = 0.0  # > 0: polyline of that width (rivers)


@dataclass
class SceneSpec:
    """Everything that is drawn: background land cover, regions, objects; ``texture_seed`` fixes the noise."""

    scene_type: str
    size: int
    background: str
    regions: list[Region] = field(default_factory=list)
    objects: list[SceneObject2D] = field(default_factory=list)
    texture_seed: int = 0


class _Placer:
    """Occupancy grid: objects are only placed where they overlap nothing (so every one stays visible)."""

    def __init__(self, size: int) -> None:
        self.size, self.occ = size, np.zeros((size, size), np.uint8)  # 1 = road, 2 = object

    def put(self, spec: SceneSpec, o: SceneObject2D, margin: int = 1, block: bool = True, inside: bool = True) -> bool:
        x0, y0, x1, y1 = o.bbox()
        x0, y0 = int(math.floor(x0)) - margin, int(math.floor(y0)) - margin
        x1, y1 = int(math.ceil(x1)) + margin, int(math.ceil(y1)) + margin
        if inside and (x0 < 0 or y0 < 0 or x1 > self.size or y1 > self.size):
            return False
        sl = (slice(max(y0, 0), max(y1, 0)), slice(max(x0, 0), max(x1, 0)))
        if block and (self.occ[sl] >= {"car": 2, "road": 3}.get(o.kind, 1)).any():  # cars stand on roads
            return False
        if block:
            self.occ[sl] = np.maximum(self.occ[sl], 1 if o.kind == "road" else 2)
        spec.objects.append(o)
        return True

    def scatter(self, spec: SceneSpec, rng: np.random.Generator, n: int, make: Callable[[float, float], SceneObject2D],
                box: tuple[float, float, float, float] | None = None, tries: int = 30) -> int:
        """Place up to ``n`` objects at random positions inside ``box``; returns how many fitted."""
        x0, y0, x1, y1 = box or (0, 0, self.size, self.size)
        placed = 0
        for _ in range(n * tries):
            if placed == n:
                break
            placed += self.put(spec, make(float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))))
        return placed


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _road(p: _Placer, spec: SceneSpec, horizontal: bool, at: float, width: float, color: str = "dark gray") -> None:
    n = p.size
    p.put(spec, SceneObject2D("road", n / 2, at, width, n + 8, 90.0, color, "wide" if width > 9 else "narrow", "line")
          if horizontal else SceneObject2D("road", at, n / 2, width, n + 8, 0.0, color,
                                           "wide" if width > 9 else "narrow", "line"), margin=1, inside=False)


def _cars(p: _Placer, spec: SceneSpec, rng: np.random.Generator, n: int, box: tuple[float, float, float, float]) -> None:
    cols = ("white", "white", "black", "red", "blue", "light gray")
    p.scatter(spec, rng, n, lambda x, y: SceneObject2D("car", x, y, 3, 6, float(rng.choice([0.0, 90.0])), _pick(rng, cols), "small"), box)


def _trees(p: _Placer, spec: SceneSpec, rng: np.random.Generator, n: int) -> None:
    p.scatter(spec, rng, n, lambda x, y: SceneObject2D("tree", x, y, 6, 6, color="dark green", size="small", shape="circle"))


def _sample_airport(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    n = p.size
    ry = float(rng.uniform(0.12, 0.3) * n) if rng.random() < .5 else float(rng.uniform(0.7, 0.88) * n)
    rw = float(rng.uniform(16, 24))
    p.put(spec, SceneObject2D("runway", n / 2, ry, rw, n - 10, 90.0, "dark gray", "large"), inside=False)
    north = ry > n / 2  # apron on the other side of the runway
    ay0, ay1 = (ry - rw / 2 - 100, ry - rw / 2 - 14) if north else (ry + rw / 2 + 14, ry + rw / 2 + 100)
    spec.objects.append(SceneObject2D("apron", n / 2, (ay0 + ay1) / 2, ay1 - ay0, n * .8, 90.0, "gray", "large"))
    ty = ay0 - 18 if north else ay1 + 18
    p.put(spec, SceneObject2D("terminal building", n / 2, ty, 22, float(rng.uniform(70, 140)), 90.0,
                              _pick(rng, ("white", "gray", "blue")), "large"))
    big = rng.random() < 0.5
    ln = float(rng.uniform(20, 28) if big else rng.uniform(10, 13))
    pc = _pick(rng, ("white", "white", "light gray"))
    k = p.scatter(spec, rng, int(rng.integers(1, 9 if big else 14)), lambda x, y: SceneObject2D(
        "plane", x, y, ln, ln, float(rng.choice([0, 90, 180, 270]) + rng.uniform(-8, 8)), pc,
        "large" if big else "small", "plane"), (n * .1, ay0 + ln / 2, n * .9, ay1 - ln / 2))
    if k == 0:
        p.put(spec, SceneObject2D("plane", n / 2, (ay0 + ay1) / 2, ln, ln, 0.0, pc, "small", "plane"), block=False)
    if rng.random() < .6:
        _cars(p, spec, rng, int(rng.integers(2, 12)), (0, ty - 40, n, ty + 40))


def _sample_industrial(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    n = p.size
    vertical = rng.random() < .5
    at = float(rng.uniform(.35, .65) * n)
    _road(p, spec, not vertical, at, float(rng.uniform(7, 12)))
    r = float(rng.choice([7, 14, 22]))
    rows, cols = int(rng.integers(2, 4 if r > 18 else 5)), int(rng.integers(2, 4 if r > 18 else 6))
    col = _pick(rng, ("white", "light gray", "beige"))
    side = rng.random() < .5
    gx0, gy0 = (float(rng.uniform(8, 30)), float(rng.uniform(8, 30)))
    if vertical and side:
        gx0 = at + 12
    elif not vertical and side:
        gy0 = at + 12
    size = {7: "small", 14: "medium", 22: "large"}[int(r)]
    for i in range(rows):
        for j in range(cols):
            if rng.random() < .9:
                p.put(spec, SceneObject2D("storage tank", gx0 + r / 2 + j * (r + 5), gy0 + r / 2 + i * (r + 5), r, r,
                                          color=col, size=size, shape="circle"))
    wc = _pick(rng, ("blue", "gray", "red", "white", "green"))
    p.scatter(spec, rng, int(rng.integers(1, 4)), lambda x, y: SceneObject2D(
        "warehouse", x, y, float(rng.uniform(18, 30)), float(rng.uniform(30, 60)), float(rng.choice([0.0, 90.0])), wc, "large"))
    if rng.random() < .5:
        _cars(p, spec, rng, int(rng.integers(1, 8)), (0, 0, n, n))


def _sample_port(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    n = p.size
    shore = float(rng.uniform(.4, .6) * n)
    xs = np.linspace(0, n, 9)
    edge = [(float(x), shore + float(rng.uniform(-6, 6))) for x in xs]
    spec.regions.append(Region("water", edge + [(n, n), (0, n)]))
    p.occ[int(shore) - 8:, :] = 2  # land objects stay on land; ships and docks use their own checks
    ndock = int(rng.integers(1, 5))
    dl = float(rng.uniform(40, 80))
    dock_x = sorted(float(x) for x in rng.choice(np.arange(20, n - 20, 36), ndock, replace=False))
    for x in dock_x:
        spec.objects.append(SceneObject2D("dock", x, shore - 6 + dl / 2, 10, dl, 0.0, "light gray", "medium"))
    water = _Placer(n)
    water.occ[: int(shore) + 8, :] = 2
    for d in spec.objects[-ndock:]:
        water.occ[: int(shore + dl) + 4, int(d.x) - 7: int(d.x) + 8] = 2
    big = rng.random() < .4
    sc = _pick(rng, ("white", "red", "blue", "gray", "black"))
    ln = float(rng.uniform(34, 50) if big else rng.uniform(12, 18))
    k = water.scatter(spec, rng, int(rng.integers(1, 5 if big else 9)), lambda x, y: SceneObject2D(
        "ship", x, y, ln * .3, ln, float(rng.uniform(-20, 20) + rng.choice([0, 90])), sc, "large" if big else "small",
        "ship"))
    if k == 0:
        spec.objects.append(SceneObject2D("ship", n / 2, (shore + n) / 2 + 10, 4, 14, 90.0, sc, "small", "ship"))
    wc = _pick(rng, ("blue", "gray", "white"))
    p.scatter(spec, rng, int(rng.integers(1, 4)), lambda x, y: SceneObject2D(
        "warehouse", x, y, float(rng.uniform(16, 26)), float(rng.uniform(30, 50)), 90.0, wc, "large"), (0, 0, n, shore - 20))
    if rng.random() < .6:
        cc = ("red", "blue", "orange", "green")
        p.scatter(spec, rng, int(rng.integers(3, 16)), lambda x, y: SceneObject2D(
            "container", x, y, 4, 10, 90.0, _pick(rng, cc), "small"), (0, 0, n, shore - 8))


def _sample_residential(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    n = p.size
    hs = [float(y) for y in sorted(rng.choice(np.arange(50, n - 40, 20), int(rng.integers(1, 3)), replace=False))]
    if len(hs) == 2 and hs[1] - hs[0] < 60:
        hs = hs[:1]
    for y in hs:
        _road(p, spec, True, y, 8)
    if rng.random() < .6:
        _road(p, spec, False, float(rng.uniform(.3, .7) * n), 8)
    roofs = [_pick(rng, ("red", "gray", "brown", "orange", "blue", "white"))]
    if rng.random() < .5:
        roofs.append(_pick(rng, [c for c in ("red", "gray", "brown", "orange", "blue", "white") if c not in roofs]))
    hsize = float(rng.choice([9, 13]))
    for y in hs:
        for side in (-1, 1):
            x = float(rng.uniform(4, 20))
            while x < n - hsize and rng.random() < .9:
                p.put(spec, SceneObject2D("house", x + hsize / 2, y + side * (4 + 3 + hsize / 2), hsize, hsize * 1.3,
                                          90.0, _pick(rng, roofs), "small" if hsize < 10 else "medium"))
                x += hsize * 1.3 + float(rng.uniform(4, 18))
    if rng.random() < .5:
        p.scatter(spec, rng, int(rng.integers(1, 4)), lambda x, y: SceneObject2D(
            "swimming pool", x, y, 5, 8, 0.0, "teal", "small"))
    _cars(p, spec, rng, int(rng.integers(0, 10)), (0, hs[0] - 4, n, hs[0] + 4))
    _trees(p, spec, rng, int(rng.integers(3, 30)))


def _sample_parking(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    x0, y0 = float(rng.uniform(10, 60)), float(rng.uniform(10, 60))
    x1, y1 = float(rng.uniform(170, 246)), float(rng.uniform(150, 246))
    spec.objects.append(SceneObject2D("parking lot", (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.0, "gray", "large"))
    rows = int(rng.integers(2, int((y1 - y0 - 10) // 16) + 1))
    fill = float(rng.uniform(.15, .95))
    for i in range(rows):
        for x in np.arange(x0 + 6, x1 - 6, 6):
            if rng.random() < fill:
                p.put(spec, SceneObject2D("car", float(x), y0 + 8 + i * 16, 3, 6, 0.0,
                                          _pick(rng, ("white", "white", "black", "red", "blue", "light gray")), "small"), 0)
    if not any(o.kind == "car" for o in spec.objects):
        p.put(spec, SceneObject2D("car", x0 + 8, y0 + 8, 3, 6, 0.0, "white", "small"), 0, block=False)
    p.occ[int(y0):int(y1), int(x0):int(x1)] = 2
    horiz = rng.random() < .5
    at = y1 + 8 if horiz else x1 + 8
    _road(p, spec, horiz, at if at < 250 else (y0 if horiz else x0) - 8, 8)
    if rng.random() < .6:
        p.scatter(spec, rng, int(rng.integers(1, 3)), lambda x, y: SceneObject2D(
            "building", x, y, float(rng.uniform(20, 40)), float(rng.uniform(20, 40)), 0.0,
            _pick(rng, ("white", "gray", "red", "blue")), "large"))
    _trees(p, spec, rng, int(rng.integers(0, 12)))


def _sample_farmland(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    n = p.size
    cols = ("green", "light green", "yellow", "brown")
    nx, ny = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    xs = np.sort(rng.uniform(0, n, nx - 1)) if nx > 1 else np.array([])
    ys = np.sort(rng.uniform(0, n, ny - 1)) if ny > 1 else np.array([])
    xb, yb = np.concatenate([[0], xs, [n]]), np.concatenate([[0], ys, [n]])
    for i in range(ny):
        for j in range(nx):
            w, h = xb[j + 1] - xb[j] - 6, yb[i + 1] - yb[i] - 6
            if w > 12 and h > 12:
                spec.objects.append(SceneObject2D("field", float(xb[j] + xb[j + 1]) / 2, float(yb[i] + yb[i + 1]) / 2,
                                                  float(w), float(h), 0.0, _pick(rng, cols), "large"))
    if rng.random() < .6:
        _road(p, spec, rng.random() < .5, float(rng.choice(np.concatenate([xs, ys]))) if nx + ny > 2 else n / 2, 5,
              "brown")
    if rng.random() < .5:
        p.scatter(spec, rng, int(rng.integers(1, 4)), lambda x, y: SceneObject2D(
            "house", x, y, 10, 13, 0.0, _pick(rng, ("red", "gray", "white")), "small"))
    _trees(p, spec, rng, int(rng.integers(0, 10)))


def _sample_sports(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    n = p.size
    if rng.random() < .6:
        cx, cy = float(rng.uniform(80, 176)), float(rng.uniform(60, 110))
        if rng.random() < .5:
            p.put(spec, SceneObject2D("running track", cx, cy, 70, 110, 90.0, "red", "large"), 2)
            spec.objects.append(SceneObject2D("soccer field", cx, cy, 46, 80, 90.0, "green", "large"))
        else:
            p.put(spec, SceneObject2D("soccer field", cx, cy, 60, 96, 90.0, "green", "large"), 2)
    cc = _pick(rng, ("green", "blue", "red"))
    k = int(rng.integers(1, 7))
    y, x = float(rng.uniform(150, 200)), float(rng.uniform(20, 50))
    for _ in range(k):
        p.put(spec, SceneObject2D("tennis court", x + 8, y, 16, 30, 0.0, cc, "medium"), 1)
        x += 19
    _road(p, spec, True, float(rng.uniform(228, 246)), 8)
    _cars(p, spec, rng, int(rng.integers(0, 10)), (0, 220, n, 256))
    _trees(p, spec, rng, int(rng.integers(0, 15)))


def _river(rng: np.random.Generator, n: int, horizontal: bool) -> Region:
    t = np.linspace(-10, n + 10, 12)
    off = float(rng.uniform(.3, .7) * n) + np.cumsum(rng.uniform(-12, 12, 12))
    pts = [(float(a), float(b)) for a, b in zip(t, off)] if horizontal else [(float(b), float(a)) for a, b in zip(t, off)]
    return Region("river", pts, float(rng.uniform(16, 34)))


def _sample_forest(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    n = p.size
    spec.background = "forest"
    if rng.random() < .5:
        cx, cy, r = float(rng.uniform(60, 196)), float(rng.uniform(60, 196)), float(rng.uniform(25, 55))
        a = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        rr = r * rng.uniform(.7, 1.2, 10)
        spec.regions.append(Region("bare ground", [(cx + float(q * np.cos(b)), cy + float(q * np.sin(b))) for q, b in zip(rr, a)]))
        p.scatter(spec, rng, int(rng.integers(1, 4)), lambda x, y: SceneObject2D(
            "house", x, y, 10, 13, 0.0, _pick(rng, ("red", "gray", "brown")), "small"),
            (cx - r * .5, cy - r * .5, cx + r * .5, cy + r * .5))
    if rng.random() < .4:
        cx, cy, r = float(rng.uniform(40, 216)), float(rng.uniform(40, 216)), float(rng.uniform(12, 30))
        a = np.linspace(0, 2 * np.pi, 9, endpoint=False)
        spec.regions.append(Region("water", [(cx + r * float(q * np.cos(b)), cy + r * float(q * np.sin(b)))
                                             for q, b in zip(rng.uniform(.7, 1.2, 9), a)]))
    river = rng.random() < .3
    if rng.random() < .6 or not (river or spec.regions):
        _road(p, spec, rng.random() < .5, float(rng.uniform(30, 226)), 6, "brown")
    if river:
        spec.regions.append(_river(rng, n, rng.random() < .5))


def _sample_river(rng: np.random.Generator, spec: SceneSpec, p: _Placer) -> None:
    horizontal = rng.random() < .5
    spec.regions.append(_river(rng, p.size, horizontal))
    if rng.random() < .5:
        spec.regions.append(Region("forest", [(0, 0), (float(rng.uniform(60, 120)), 0),
                                              (float(rng.uniform(40, 100)), p.size), (0, p.size)]))
    if rng.random() < .6:
        _road(p, spec, not horizontal, float(rng.uniform(.3, .7) * p.size), 7)
    _trees(p, spec, rng, int(rng.integers(0, 12)))


_SAMPLERS: dict[str, Callable[[np.random.Generator, SceneSpec, _Placer], None]] = {
    "airport": _sample_airport, "industrial": _sample_industrial, "port": _sample_port,
    "residential": _sample_residential, "parking": _sample_parking, "farmland": _sample_farmland,
    "sports": _sample_sports, "forest": _sample_forest, "river": _sample_river,
}
_BACKGROUNDS = {"airport": ("grass", "bare ground"), "industrial": ("bare ground", "grass", "sand"),
                "port": ("bare ground", "sand", "grass"), "residential": ("grass", "grass", "bare ground"),
                "parking": ("grass", "bare ground"), "farmland": ("bare ground", "grass"), "sports": ("grass", "bare ground"),
                "forest": ("forest",), "river": ("grass", "bare ground", "sand")}


def sample_scene(rng: np.random.Generator, scene_type: str, size: int = 256) -> SceneSpec:
    """A random scene of one type (see ``SCENE_TYPES``); deterministic given the generator state."""
    if scene_type not in _SAMPLERS:
        raise ValueError(f"unknown scene type {scene_type!r}; expected one of {SCENE_TYPES}")
    spec = SceneSpec(scene_type, size, _pick(rng, _BACKGROUNDS[scene_type]), texture_seed=int(rng.integers(2**31)))
    s = size / 256.0
    _SAMPLERS[scene_type](rng, spec, _Placer(256))
    if s != 1.0:  # samplers work in 256 px units
        for o in spec.objects:
            o.x, o.y, o.w, o.h = o.x * s, o.y * s, o.w * s, o.h * s
        for r in spec.regions:
            r.points, r.width = [(x * s, y * s) for x, y in r.points], r.width * s
    return spec


def region_mask(r: Region, n: int) -> np.ndarray:
    im = Image.new("L", (n, n), 0)
    d = ImageDraw.Draw(im)
    if r.width > 0:
        d.line(r.points, fill=255, width=int(round(r.width)), joint="curve")
    else:
        d.polygon(r.points, fill=255)
    return np.asarray(im) > 0


def region_masks(spec: SceneSpec) -> dict[str, np.ndarray]:
    """Boolean mask per region kind (the background is what no region covers)."""
    masks: dict[str, np.ndarray] = {}
    for r in spec.regions:
        m = region_mask(r, spec.size)
        masks[r.kind] = masks[r.kind] | m if r.kind in masks else m
    return masks
