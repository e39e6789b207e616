"""Scene boxes of an image: the uniform grid with overlap, and segment boxes aggregated into regions.

Boxes are ``(x0, y0, x1, y1)`` in pixels of the original image, x1/y1 exclusive. Thesis sec. 4.2.2:
uniform cropping with overlap (UC), and segment boxes "grouped and clustered based on spatial
proximity to form larger, aggregated regions" (SAM-based cropping, SC).
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]


def full_box(width: int, height: int) -> Box:
    """The whole image: the meta-scene every image keeps (thesis sec. 5.2.3)."""
    return (0, 0, width, height)


def uniform_grid_boxes(width: int, height: int, grid: int, overlap: float) -> list[Box]:
    """``grid`` x ``grid`` patches of equal size whose neighbours overlap by ``overlap`` of a patch.

    With patch side p and stride s = p (1 - overlap), grid patches span p + (grid - 1) s = the image
    side, so p = side / (1 + (grid - 1)(1 - overlap)). Row-major order, top-left first.
    """
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")

    def spans(side: int) -> list[tuple[int, int]]:
        patch = side / (1 + (grid - 1) * (1 - overlap))
        stride = patch * (1 - overlap)
        out = []
        for i in range(grid):
            a = int(round(i * stride))
            b = side if i == grid - 1 else int(round(i * stride + patch))
            out.append((a, max(b, a + 1)))
        return out

    return [(x0, y0, x1, y1) for (y0, y1) in spans(height) for (x0, x1) in spans(width)]


def mask_to_box(mask: np.ndarray) -> Box | None:
    """Tight box of a boolean mask (H, W); None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def label_boxes(labels: np.ndarray) -> list[Box]:
    """One tight box per label of an integer segmentation (H, W), in label order."""
    out = []
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    values, starts = np.unique(flat[order], return_index=True)
    ends = np.append(starts[1:], flat.size)
    w = labels.shape[1]
    for s, e in zip(starts, ends):
        idx = order[s:e]
        ys, xs = idx // w, idx % w
        out.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return out


def _area(b: np.ndarray) -> np.ndarray:
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter)


def aggregate_boxes(boxes: list[Box], width: int, height: int, *, max_regions: int = 9,
                    min_area_frac: float = 0.002, max_area_frac: float = 0.9,
                    merge_distance: float = 0.25, min_side_frac: float = 0.15,
                    dedupe_iou: float = 0.85) -> list[Box]:
    """Cluster segment boxes by spatial proximity into at most ``max_regions`` region boxes.

    1. Drop tiny boxes (area < ``min_area_frac`` of the image: noise) and near-full ones
       (> ``max_area_frac``: the full-image meta-scene already covers them).
    2. Agglomerative clustering (complete linkage, so a cluster stays compact) of the box centres
       in image-normalised coordinates, cut at ``merge_distance`` (no two centres of a region
       further apart); if that leaves more than ``max_regions`` clusters, cut at ``max_regions``.
    3. A region is the union box of its cluster, grown about its centre to at least
       ``min_side_frac`` of each image side (a crop of a few pixels carries no context).
    4. Regions that again cover almost the whole image, or repeat another (IoU > ``dedupe_iou``),
       are dropped. Larger regions first.
    """
    if max_regions < 1 or not boxes:
        return []
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    image_area = float(width * height)
    frac = _area(b) / image_area
    b = b[(frac >= min_area_frac) & (frac <= max_area_frac)]
    if len(b) == 0:
        return []
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2 / width, (b[:, 1] + b[:, 3]) / 2 / height], axis=1)
    if len(b) == 1:
        clusters = np.zeros(1, dtype=int)
    else:
        from scipy.cluster.hierarchy import fcluster, linkage

        tree = linkage(centres, method="complete")
        clusters = fcluster(tree, t=merge_distance, criterion="distance")
        if clusters.max() > max_regions:
            clusters = fcluster(tree, t=max_regions, criterion="maxclust")
    regions = []
    for c in np.unique(clusters):
        m = b[clusters == c]
        x0, y0 = m[:, 0].min(), m[:, 1].min()
        x1, y1 = m[:, 2].max(), m[:, 3].max()
        regions.append(_grow((x0, y0, x1, y1), width, height, min_side_frac))
    r = np.asarray(regions, dtype=np.float64)
    r = r[_area(r) / image_area <= max_area_frac]
    r = r[np.argsort(-_area(r), kind="stable")]
    keep: list[int] = []
    for i in range(len(r)):
        if not keep or _iou(r[i : i + 1], r[keep]).max() <= dedupe_iou:
            keep.append(i)
    return [tuple(int(v) for v in r[i]) for i in keep[:max_regions]]  # type: ignore[misc]


def _grow(box: tuple[float, float, float, float], width: int, height: int, min_side_frac: float) -> Box:
    """Grow a box about its centre to at least ``min_side_frac`` of each side, kept inside the image."""
    x0, y0, x1, y1 = box
    out = []
    for a, b, side in ((x0, x1, width), (y0, y1, height)):
        need = max(min_side_frac * side, b - a, 1.0)
        c = (a + b) / 2
        lo = min(max(c - need / 2, 0.0), side - need)
        out.append((int(round(max(lo, 0.0))), int(round(min(lo + need, side)))))
    (ax, bx), (ay, by) = out
    return (ax, ay, max(bx, ax + 1), max(by, ay + 1))
