"""Object-detection post-processing: non-maximum suppression.

``non_max_suppression(boxes, scores, max_output?, iou_threshold?, score_threshold?)`` is a core op
because its result is data-dependent in both value and length: a greedy selection whose every
step depends on the previous ones, which no fixed composition of tensor ops expresses (like
``topk`` and ``nonzero``, a backend implements it as a loop).

- ``boxes``: ``[batch, boxes, 4]`` floats, corners ``(y1, x1, y2, x2)`` in either order
  (``center_point_box=False``) or ``(x_center, y_center, width, height)`` (``True``).
- ``scores``: ``[batch, classes, boxes]`` of the same dtype.
- ``max_output``: int64 scalar, boxes kept per (batch, class); absent or <= 0 keeps none.
- ``iou_threshold``: float scalar (absent: 0); a box is suppressed by a kept box of the same
  (batch, class) whose intersection-over-union with it is strictly greater.
- ``score_threshold``: float scalar; when present only boxes scoring strictly above it compete.

Per (batch, class), candidates are visited by score, highest first (equal scores: lower box
index first); each one not suppressed by an already kept box is kept, until ``max_output`` are
kept. The result is int64 ``[selected, 3]`` rows ``(batch, class, box)``, batch-major, then
class, then in selection order. The geometry is computed in the boxes' dtype (float32 for
narrower floats), as ONNX's implementations do, so threshold comparisons agree with them.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from ..registry import Attr, op
from ..types import TensorType
from ._util import require


def _scalar(v, default):
    if v is None:
        return default
    a = np.asarray(v).reshape(-1)
    require(a.size == 1, f"non_max_suppression: a threshold operand must hold one value, got {a.size}")
    return a[0]


def _corners(boxes: np.ndarray, center_point_box: bool):
    """(y_min, x_min, y_max, x_max) arrays over the last axis of ``[n, 4]`` boxes."""
    if center_point_box:
        xc, yc, w, h = (boxes[:, i] for i in range(4))
        return yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2
    y1, x1, y2, x2 = (boxes[:, i] for i in range(4))
    return np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)


def _suppressed(corners, i: int, kept: list, iou_threshold) -> bool:
    """Whether box ``i`` overlaps any kept box by IoU > threshold (degenerate boxes never do)."""
    if not kept:
        return False
    ymin, xmin, ymax, xmax = corners
    k = np.asarray(kept)
    ix = np.minimum(xmax[i], xmax[k]) - np.maximum(xmin[i], xmin[k])
    iy = np.minimum(ymax[i], ymax[k]) - np.maximum(ymin[i], ymin[k])
    inter = ix * iy
    area_i = (xmax[i] - xmin[i]) * (ymax[i] - ymin[i])
    area_k = (xmax[k] - xmin[k]) * (ymax[k] - ymin[k])
    union = area_i + area_k - inter
    ok = (ix > 0) & (iy > 0) & (inter > 0) & (area_i > 0) & (area_k > 0) & (union > 0)
    with np.errstate(all="ignore"):
        iou = np.where(ok, inter / np.where(union > 0, union, 1), 0)
    return bool(np.any(ok & (iou > iou_threshold)))


@op("non_max_suppression", inputs=("boxes", "scores", "max_output?", "iou_threshold?", "score_threshold?"),
    attrs={"center_point_box": Attr("bool", False)})
class NonMaxSuppression:
    """Greedy per-class NMS; int64 ``[selected, 3]`` rows ``(batch, class, box)``. See the module doc."""

    def infer(boxes: TensorType, scores: TensorType, max_output: TensorType = None,
              iou_threshold: TensorType = None, score_threshold: TensorType = None, *, center_point_box):
        require(boxes.rank == 3 and (boxes.shape[2] == 4 or isinstance(boxes.shape[2], str)),
                f"non_max_suppression: boxes must be [batch, boxes, 4], got {boxes}")
        require(boxes.dtype.is_float, f"non_max_suppression: boxes must be floats, got {boxes}")
        require(scores.rank == 3 and scores.dtype == boxes.dtype,
                f"non_max_suppression: scores must be [batch, classes, boxes] of the boxes' dtype, got {scores}")
        for a, b, what in ((boxes.shape[0], scores.shape[0], "batch"), (boxes.shape[1], scores.shape[2], "box")):
            require(a == b or not (isinstance(a, int) and isinstance(b, int)),
                    f"non_max_suppression: boxes {boxes} and scores {scores} differ in the {what} dim")
        if max_output is not None:
            require(max_output.dtype.kind in ("int", "uint") and max_output.rank <= 1,
                    f"non_max_suppression: max_output must be an integer scalar, got {max_output}")
        for t, what in ((iou_threshold, "iou_threshold"), (score_threshold, "score_threshold")):
            if t is not None:
                require(t.dtype.is_float and t.rank <= 1,
                        f"non_max_suppression: {what} must be a float scalar, got {t}")
        return TensorType("i64", [dims.UNKNOWN, 3])

    def reference(boxes, scores, max_output=None, iou_threshold=None, score_threshold=None, *, center_point_box):
        ct = boxes.dtype if boxes.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        limit = max(int(_scalar(max_output, 0)), 0)
        iou_t = ct.type(_scalar(iou_threshold, 0.0))
        score_t = None if score_threshold is None else ct.type(_scalar(score_threshold, 0.0))
        out = []
        n_batch, n_class, n_box = scores.shape
        require(boxes.shape[0] == n_batch and boxes.shape[1] == n_box and boxes.shape[2] == 4,
                f"non_max_suppression: boxes {list(boxes.shape)} do not match scores {list(scores.shape)}")
        for b in range(n_batch if limit else 0):
            corners = _corners(boxes[b].astype(ct), center_point_box)
            for c in range(n_class):
                s = scores[b, c].astype(ct)
                order = np.argsort(-s.astype(np.float64), kind="stable")  # highest first, ties by index
                if score_t is not None:
                    order = order[s[order] > score_t]
                kept: list = []
                for i in order:
                    if len(kept) >= limit:
                        break
                    if not _suppressed(corners, int(i), kept, iou_t):
                        kept.append(int(i))
                out.extend((b, c, i) for i in kept)
        return np.array(out, dtype=np.int64).reshape(-1, 3)

    def lower(b, boxes, scores, max_output=None, iou_threshold=None, score_threshold=None, *, center_point_box):
        raise NotImplementedError(
            "non_max_suppression: the number of selected boxes depends on the data (scores, overlaps and "
            "thresholds), so the result's shape is known only after it runs; compiled kernels need every "
            "buffer's size before the call")
