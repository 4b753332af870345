"""Converters for ONNX detection post-processing: NonMaxSuppression.

NonMaxSuppression maps onto the core op ``non_max_suppression`` (its result length depends on
the data, like ``nonzero``). The optional limit and thresholds stay run-time operands; an
absent ``max_output_boxes_per_class`` keeps no box, as the spec says.
"""
from __future__ import annotations

from ....ir import dtypes as kd
from ..registry import converter


@converter("NonMaxSuppression", since=10)
def non_max_suppression(ctx):
    center = ctx.attr("center_point_box", 0)
    if center not in (0, 1):
        ctx.fail(f"center_point_box must be 0 or 1, got {center}")
    if ctx.rank(0) != 3 or ctx.rank(1) != 3:
        ctx.fail(f"boxes must be [batch, boxes, 4] and scores [batch, classes, boxes], "
                 f"got {ctx.type(0)} and {ctx.type(1)}")
    ops = [ctx.input(0), ctx.input(1)]
    if ctx.dtype(1) != ctx.dtype(0):
        ops[1] = ctx.op("cast", ops[1], to=ctx.dtype(0))
    for i, what, want in ((2, "max_output_boxes_per_class", None), (3, "iou_threshold", ctx.dtype(0)),
                          (4, "score_threshold", ctx.dtype(0))):
        v = ctx.input(i)
        if v is not None:
            t = ctx.type(i)
            if t.rank > 1 or (isinstance(t.size, int) and t.size != 1):
                ctx.fail(f"{what} (input {i}) must be a scalar, got {t}")
            if want is None and not t.dtype.is_int:
                ctx.fail(f"{what} (input {i}) must be an integer, got {t}")
            if want is not None and t.dtype != want:
                v = ctx.op("cast", v, to=want)
            if want is None and t.dtype != kd.int64:
                v = ctx.op("cast", v, to=kd.int64)
        ops.append(v)
    return ctx.op("non_max_suppression", *ops, center_point_box=bool(center))
