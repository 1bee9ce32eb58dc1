"""Ops that move, cut, join or regroup positions without computing on them.

Each is an index map expressed in the atom algebra: reshape = merge then split into row-major
digits (hidden <-> heads x head_dim, C x H x W -> features), concat = sum of the inputs'
layouts, split/slice/select = sub-ranges (refining the atom that is cut), permute = reorder.
Zero preservation is inherited position by position.
"""

from __future__ import annotations

from trainonce.graph.ir import Node, Value
from trainonce.groups.atoms import Layout
from trainonce.groups.propagate import Propagation, rule


def _view_of_param(p: Propagation, source: Value, out: Value) -> None:
    param = p.param_of(source)
    if param is not None:
        p.origin[out.id] = param


def reshape_layouts(p: Propagation, node: Node, x: Value, out_shape: tuple[int, ...]) -> tuple[list[Layout], list[bool]]:
    """Layouts of a row-major reshape of ``x`` to ``out_shape``.

    Dimensions are matched in blocks whose element counts agree (the classic view algorithm);
    inside a block the input dims are merged and the merged layout is split into the output
    dims. Size-1 dims carry nothing and are created fresh.
    """
    in_dims = [d for d in range(x.ndim) if x.shape[d] != 1]
    out_dims = [d for d in range(len(out_shape)) if out_shape[d] != 1]
    layouts: list[Layout | None] = [None] * len(out_shape)
    zero = [False] * len(out_shape)
    i = j = 0
    while i < len(in_dims) or j < len(out_dims):
        block_in, block_out = [in_dims[i]], [out_dims[j]]
        i, j = i + 1, j + 1
        size_in, size_out = x.shape[block_in[0]], out_shape[block_out[0]]
        while size_in != size_out:
            if size_in < size_out:
                block_in.append(in_dims[i])
                size_in *= x.shape[in_dims[i]]
                i += 1
            else:
                block_out.append(out_dims[j])
                size_out *= out_shape[out_dims[j]]
                j += 1
        merged = p.atoms.merge_layouts([p.dim(x, d) for d in block_in])
        parts = p.atoms.split_layout(merged, [out_shape[d] for d in block_out])
        # frozen dims (spatial, repeat digits) are never zeroed, so they do not count
        z = all(p.is_zero(x, d) or p.all_frozen(p.dim(x, d)) for d in block_in)
        for d, part in zip(block_out, parts, strict=True):
            layouts[d] = part
            zero[d] = z
    for d, layout in enumerate(layouts):
        if layout is None:
            layouts[d] = p.fresh(1, "size-1 dimension")
    return [layout for layout in layouts if layout is not None], zero


@rule("view", "reshape", "_unsafe_view", "view_copy", "_reshape_alias", "flatten", "unflatten",
      "squeeze", "unsqueeze", "squeeze_copy", "unsqueeze_copy", "view_as", "reshape_as")
def reshape(p: Propagation, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]

    def run() -> None:
        layouts, zero = reshape_layouts(p, node, x, out.shape)
        p.set(out, layouts, zero)
        _view_of_param(p, x, out)

    p.guarded(node, run)


@rule("permute", "transpose", "t", "swapaxes", "swapdims", "movedim", "numpy_T", "mT", "permute_copy", "transpose_copy")
def permute(p: Propagation, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    n = x.ndim
    if node.packet in ("permute", "permute_copy"):
        order = [d % n for d in node.args["dims"]]
    elif node.packet in ("transpose", "swapaxes", "swapdims", "transpose_copy"):
        names = ("dim0", "dim1") if "dim0" in node.args else ("axis0", "axis1")
        a, b = (int(node.args[k]) for k in names)
        order = list(range(n))
        order[a % n], order[b % n] = order[b % n], order[a % n]
    elif node.packet == "movedim":
        source = node.args["source"]
        destination = node.args["destination"]
        source = [s % n for s in (source if isinstance(source, (list, tuple)) else [source])]
        destination = [d % n for d in (destination if isinstance(destination, (list, tuple)) else [destination])]
        rest = iter(d for d in range(n) if d not in source)
        placed = dict(zip(destination, source, strict=True))
        order = [placed[d] if d in placed else next(rest) for d in range(n)]
    else:  # t, numpy_T, mT: reverse the last two (or all for numpy_T)
        order = list(range(n))
        if n >= 2:
            if node.packet == "numpy_T":
                order = order[::-1]
            else:
                order[-1], order[-2] = order[-2], order[-1]
    p.set(out, [p.dim(x, d) for d in order], [p.is_zero(x, d) for d in order])
    _view_of_param(p, x, out)


@rule("expand", "expand_as", "broadcast_to", "expand_copy")
def expand(p: Propagation, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    offset = out.ndim - x.ndim
    layouts, zero = [], []
    for d in range(out.ndim):
        k = d - offset
        if k >= 0 and x.shape[k] == out.shape[d]:
            layouts.append(p.dim(x, k))
            zero.append(p.is_zero(x, k))
        else:
            layouts.append(p.fresh(out.shape[d], f"expanded dimension at {node.where}"))
            zero.append(False)
    p.set(out, layouts, zero)
    _view_of_param(p, x, out)


@rule("repeat")
def repeat(p: Propagation, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    offset = out.ndim - x.ndim

    def run() -> None:
        layouts, zero = [], []
        for d in range(out.ndim):
            k = d - offset
            if k < 0:
                layouts.append(p.fresh(out.shape[d], f"repeated dimension at {node.where}"))
                zero.append(False)
                continue
            times = out.shape[d] // x.shape[k]
            if times == 1:
                layouts.append(p.dim(x, k))
            else:
                tiles = p.fresh(times, f"repeated dimension at {node.where}")
                layouts.append(p.atoms.merge_layouts([tiles, p.dim(x, k)]))
            zero.append(p.is_zero(x, k))
        p.set(out, layouts, zero)

    p.guarded(node, run)


@rule("cat", "concat", "concatenate")
def cat(p: Propagation, node: Node) -> None:
    out = node.outputs[0]
    # torch.cat skips 1-D empty tensors (a legacy rule); so do we.
    parts = [v for v in node.args["tensors"] if isinstance(v, Value) and not (v.ndim == 1 and v.shape[0] == 0)]
    axis = node.args["dim"] % out.ndim
    layouts: list[Layout] = []
    zero = []
    for d in range(out.ndim):
        if d == axis:
            layouts.append(tuple(term for v in parts for term in p.atoms.normalize(p.dim(v, d))))
        else:
            layouts.append(p.unify_all(node, [(v, d) for v in parts]))
        zero.append(all(p.is_zero(v, d) for v in parts))
    p.set(out, layouts, zero)


@rule("stack")
def stack(p: Propagation, node: Node) -> None:
    out = node.outputs[0]
    parts = list(node.args["tensors"])
    axis = node.args["dim"] % out.ndim
    layouts: list[Layout] = []
    zero = []
    for d in range(out.ndim):
        if d == axis:
            layouts.append(tuple(t for _ in parts for t in p.fresh(1, f"stacked at {node.where}")))
            zero.append(False)
            continue
        k = d if d < axis else d - 1
        layouts.append(p.unify_all(node, [(v, k) for v in parts]))
        zero.append(all(p.is_zero(v, k) for v in parts))
    p.set(out, layouts, zero)


def _take_range(p: Propagation, node: Node, x: Value, out: Value, axis: int, start: int, stop: int, keep_dim: bool) -> None:
    sub = p.atoms.slice(p.dim(x, axis), start, stop)
    layouts = [p.dim(x, d) for d in range(x.ndim)]
    zero = [p.is_zero(x, d) for d in range(x.ndim)]
    if keep_dim:
        layouts[axis] = sub
    else:
        del layouts[axis]
        del zero[axis]
    p.set(out, layouts, zero)
    _view_of_param(p, x, out)


@rule("split", "split_with_sizes", "chunk", "unbind", "tensor_split", "unsafe_split", "split_copy")
def split(p: Propagation, node: Node) -> None:
    x = node.inputs[0]
    axis = int(node.args.get("dim") or 0) % x.ndim
    keep = node.packet != "unbind"

    def run() -> None:
        start = 0
        for out in node.outputs:
            length = out.shape[axis] if keep else 1
            _take_range(p, node, x, out, axis, start, start + length, keep)
            start += length
        if node.packet in ("chunk", "split", "unbind", "unsafe_split"):
            # The boundaries are recomputed from the total size (chunk) or from one split size:
            # the equal parts must stay equal, so they prune the same positions.
            first = node.outputs[0]
            for out in node.outputs[1:]:
                if out.shape[axis] == first.shape[axis] and keep:
                    p.unify(p.dim(first, axis), p.dim(out, axis), node)

    p.guarded(node, run)


def literal_extents(size: int, start: int, stop: int | None, open_end: bool) -> list[tuple[int, int]]:
    """Position ranges whose *count* a literal slice bound encodes; they must keep every position.

    The graph holds slice bounds as numbers, whether the code wrote them (``h[:, 4:7]``) or
    computed them from a width: after pruning, a literal bound still points where it did. A
    non-negative bound counts the positions before it, a negative one those after it, so those
    are frozen. A stop at or past the end (``h[:, 4:]``; slices clamp) counts nothing when
    ``open_end`` (``slice``; ``narrow`` insists on its length).
    """
    extents = [(0, start) if start >= 0 else (size + start, size)]
    if stop is not None and not (open_end and stop >= size):
        extents.append((0, stop) if stop >= 0 else (size + stop, size))
    return [(max(0, a), min(size, b)) for a, b in extents if min(size, b) > max(0, a)]


def _freeze_extents(p: Propagation, node: Node, x: Value, axis: int, extents: list[tuple[int, int]]) -> None:
    for a, b in extents:
        p.freeze(p.atoms.slice(p.dim(x, axis), a, b), f"sliced at a literal offset by {node.where} (the offset "
                                                       "would point elsewhere once positions before it are removed)")


@rule("slice", "narrow", "slice_copy")
def slice_(p: Propagation, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    axis = node.args.get("dim", 0) % x.ndim
    size = x.shape[axis]
    if node.packet == "narrow":
        raw_start, step = int(node.args["start"]), 1  # a negative start counts from the end, with its length
        raw_stop: int | None = raw_start + int(node.args["length"]) if raw_start >= 0 else None
    else:
        raw_start, step = node.args.get("start") or 0, node.args.get("step") or 1
        raw_stop = node.args.get("end")
    start = max(0, min(size, raw_start + size if raw_start < 0 else raw_start))
    if step != 1:
        reason = f"strided slice at {node.where}"
        p.freeze(p.dim(x, axis), reason)
        p.set(out, [p.dim(x, d) if d != axis else p.fresh(out.shape[d], reason) for d in range(x.ndim)],
              [p.is_zero(x, d) and d != axis for d in range(x.ndim)])
        return
    extents = literal_extents(size, raw_start, raw_stop, open_end=node.packet != "narrow")

    def run() -> None:
        _take_range(p, node, x, out, axis, start, start + out.shape[axis], True)
        _freeze_extents(p, node, x, axis, extents)

    p.guarded(node, run)


@rule("select")
def select(p: Propagation, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    axis = node.args["dim"] % x.ndim
    raw = int(node.args["index"])
    index = raw % x.shape[axis]

    def run() -> None:
        _take_range(p, node, x, out, axis, index, index + 1, False)
        _freeze_extents(p, node, x, axis, literal_extents(x.shape[axis], raw, raw + 1 if raw >= 0 else None, True))

    p.guarded(node, run)


@rule("index_select", "gather", "take_along_dim")
def index_select(p: Propagation, node: Node) -> None:
    """Positions chosen by index values: the indexed dim is frozen, the others carry over."""
    x, out = node.inputs[0], node.outputs[0]
    axis = node.args.get("dim", 0) % x.ndim
    reason = f"positions chosen by index values at {node.where}"
    p.freeze(p.dim(x, axis), reason)
    if x.ndim != out.ndim or any(x.shape[d] != out.shape[d] for d in range(x.ndim) if d != axis):
        p.opaque(node, reason)
        return
    p.set(out, [p.dim(x, d) if d != axis else p.fresh(out.shape[d], reason) for d in range(x.ndim)],
          [p.is_zero(x, d) and d != axis for d in range(x.ndim)])


@rule("roll", "flip", "fliplr", "flipud", "cumsum", "cumprod", "cummax", "cummin", "tril", "triu")
def position_dependent(p: Propagation, node: Node) -> None:
    """Ops whose result at a position depends on the positions around it along some dims."""
    x = node.inputs[0]
    dims = node.args.get("dims", node.args.get("dim"))
    if node.packet in ("tril", "triu"):
        dims = [-2, -1]
    elif node.packet == "fliplr":
        dims = [1]
    elif node.packet == "flipud":
        dims = [0]
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        dims = list(range(x.ndim))
    dims = [d % x.ndim for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    for d in dims:
        p.freeze(p.dim(x, d), f"positions are reordered or accumulated along this dimension by {node.where}")
    keeps_zero = node.packet not in ("cumprod",)
    for out in node.outputs:
        if out.shape == x.shape:
            p.set(out, p.dims(x), [p.is_zero(x, d) and keeps_zero for d in range(x.ndim)])


@rule("constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
      "replication_pad1d", "replication_pad2d", "replication_pad3d", "circular_pad1d", "circular_pad2d", "circular_pad3d")
def pad(p: Propagation, node: Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    value = node.args.get("value") or 0
    layouts, zero = [], []
    for d in range(x.ndim):
        if x.shape[d] == out.shape[d]:
            layouts.append(p.dim(x, d))
            zero.append(p.is_zero(x, d) and value == 0)
        else:
            reason = f"padded by {node.where}"
            p.freeze(p.dim(x, d), reason)
            layouts.append(p.fresh(out.shape[d], reason))
            zero.append(False)
    p.set(out, layouts, zero)


def _spatial(p: Propagation, node: Node, spatial: int) -> None:
    """Pooling / upsampling: the last ``spatial`` dims are new, the others carry over.

    Every output position mixes a window of input positions, so the pooled (or interpolated)
    input dims are frozen: removing one of their positions would move every window.
    """
    x = node.inputs[0]
    keep = x.ndim - spatial
    for d in range(max(0, keep), x.ndim):
        p.freeze(p.dim(x, d), f"pooled or resampled over by {node.where} (its windows depend on every position)")
    for out in node.outputs[:1]:
        layouts = [p.dim(x, d) for d in range(keep)]
        layouts += [p.fresh(s, f"spatial size of {node.where}") for s in out.shape[keep:]]
        p.set(out, layouts, [p.is_zero(x, d) for d in range(keep)] + [False] * spatial)
    for out in node.outputs[1:]:  # pooling indices
        p.set(out, p.dims(node.outputs[0]), [False] * out.ndim)


def _spatial_rule(packets: tuple[str, ...], spatial: int) -> None:
    rule(*packets)(lambda p, node: _spatial(p, node, spatial))


_spatial_rule(("max_pool1d", "avg_pool1d", "adaptive_avg_pool1d", "adaptive_max_pool1d", "max_pool1d_with_indices",
               "upsample_nearest1d", "upsample_linear1d", "_upsample_nearest_exact1d"), 1)
_spatial_rule(("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "max_pool2d_with_indices",
               "upsample_nearest2d", "upsample_bilinear2d", "upsample_bicubic2d", "_upsample_nearest_exact2d",
               "_upsample_bilinear2d_aa", "_adaptive_avg_pool2d", "lp_pool2d"), 2)
_spatial_rule(("max_pool3d", "avg_pool3d", "adaptive_avg_pool3d", "adaptive_max_pool3d", "max_pool3d_with_indices",
               "upsample_nearest3d", "upsample_trilinear3d", "_upsample_nearest_exact3d"), 3)


@rule("pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle")
def pixel_shuffle(p: Propagation, node: Node) -> None:
    """Channel <-> space regrouping, written as the reshape/permute it is."""
    x, out = node.inputs[0], node.outputs[0]
    lead = x.ndim - 3

    def run() -> None:
        c, h, w = x.shape[lead:]
        cz, hz, wz = (p.is_zero(x, lead + k) for k in range(3))
        base = [p.dim(x, d) for d in range(lead)]
        if node.packet == "pixel_shuffle":
            r = node.args["upscale_factor"]
            c_out, r1, r2 = p.atoms.split_layout(p.dim(x, lead), [c // (r * r), r, r])
            p.freeze(r1, f"upscale factor of {node.where} (fixed in the code)")
            p.freeze(r2, f"upscale factor of {node.where} (fixed in the code)")
            dims = [c_out, p.atoms.merge_layouts([p.dim(x, lead + 1), r1]), p.atoms.merge_layouts([p.dim(x, lead + 2), r2])]
        elif node.packet == "pixel_unshuffle":
            r = node.args["downscale_factor"]
            h_out, r1 = p.atoms.split_layout(p.dim(x, lead + 1), [h // r, r])
            w_out, r2 = p.atoms.split_layout(p.dim(x, lead + 2), [w // r, r])
            dims = [p.atoms.merge_layouts([p.dim(x, lead), r1, r2]), h_out, w_out]
        else:
            g = node.args["groups"]
            outer, inner = p.atoms.split_layout(p.dim(x, lead), [g, c // g])
            p.freeze(outer, f"the number of groups of {node.where} (fixed in the code)")
            dims = [p.atoms.merge_layouts([inner, outer]), p.dim(x, lead + 1), p.dim(x, lead + 2)]
        spatial_zero = node.packet == "channel_shuffle"
        p.set(out, base + dims, [p.is_zero(x, d) for d in range(lead)] + [cz, hz and spatial_zero, wz and spatial_zero])

    p.guarded(node, run)
