"""A Keras model's dependency graph: coupled channel groups, the pruning plan, its MACs.

Structured pruning removes whole output channels (filters of a convolution, units of a
dense layer). In a graph that is more than a chain, channels are coupled: the two inputs of
a residual ``Add`` must keep the same channels, a depthwise convolution's channels are its
input's, a squeeze-excite block's excitation must match the feature map it scales, and a
``Concatenate`` lays its inputs' channels side by side. In the spirit of dependency-graph
pruning (Torch-Pruning's DepGraph, NNCF's filter pruning) this module follows every
channel of every tensor back to the layer that created it:

* each channel a Conv/Dense/SeparableConv layer creates is an *element*; a tensor's last
  axis is an array of element ids (``Flatten`` repeats them once per spatial position, a
  depthwise multiplier once per copy);
* layers that tie channels together (merges, shared layers, concatenation on another axis)
  unite elements; a united set is a *unit*, kept or removed as a whole;
* the layers whose created channels are tied together form a *group*: each group loses
  the same fraction of its units, the least important first (the summed L1 norm of every
  coupled filter);
* channels that the model's outputs, its inputs or a layer that cannot change its channel
  count (e.g. a softmax across channels) need are *fixed*: never removed.

A layer type not listed in :data:`SUPPORTED_LAYERS` is a :class:`PruningError` naming the
layer and its type: guessing how an unknown layer treats channels could silently produce a
wrong model. Nested models (``keras.applications`` bases inside a ``Sequential``) are
inlined: the plan, and the pruned model, are flat.

Shared by model inspection (is the model prunable? how many MACs?) and by pruning (which
channels each layer keeps). Runs inside a worker process (TensorFlow is imported there).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infertune.exceptions import PruningError
from infertune.workers.tfsetup import import_tensorflow

#: Layer types structured pruning understands, by how they treat channels. The README's
#: table of supported layers is this mapping.
SUPPORTED_LAYERS: dict[str, tuple[str, ...]] = {
    # Create channels: their output channels are what pruning removes.
    "producer": ("Conv1D", "Conv2D", "Conv3D", "Dense", "SeparableConv1D", "SeparableConv2D"),
    # Output channels follow the input's (times the depth multiplier).
    "depthwise": ("DepthwiseConv1D", "DepthwiseConv2D"),
    # One parameter (or statistic) per channel: sliced with the channels.
    "per_channel": (
        "BatchNormalization",
        "LayerNormalization",
        "Normalization",
        "Rescaling",
        "PReLU",
    ),
    # Channel-preserving: no weights, each channel handled on its own.
    "elementwise": (
        "Activation",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "Softmax",
        "Identity",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
    ),
    # Element-wise merges (with broadcasting): their inputs' channels are coupled.
    "merge": ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"),
    "concat": ("Concatenate",),
    # Flatten, or a Reshape that keeps the channels innermost: positions x channels.
    "flatten": ("Flatten",),
    "reshape": ("Reshape",),
    # Known layers that keep their input's channels and whose output cannot be pruned.
    "barrier": ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "UnitNormalization"),
}

_KIND = {name: kind for kind, names in SUPPORTED_LAYERS.items() for name in names}
_SOFTMAX = ("softmax", "log_softmax")


def _keras() -> Any:
    import_tensorflow()
    import keras

    return keras


# --------------------------------------------------------------------------- flat graph


@dataclass
class Call:
    """One call of a layer in the flattened graph (nested models inlined).

    Attributes:
        layer: The original Keras layer.
        node: Its Keras node; its ``arguments`` replay the call on new tensors.
        inputs: Keys of the input tensors, in ``node.input_tensors`` order.
        outputs: Keys of the output tensors, in ``node.outputs`` order.
        name: The layer's name in the flattened model (unique there).
    """

    layer: Any
    node: Any
    inputs: list[int]
    outputs: list[int]
    name: str


@dataclass
class FlatGraph:
    """A model's layer calls in topological order, with nested models inlined."""

    model: Any
    calls: list[Call] = field(default_factory=list)
    tensors: dict[int, Any] = field(default_factory=dict)  # key -> KerasTensor
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def add_tensor(self, tensor: Any) -> int:
        """Register a tensor; returns its key."""
        key = len(self.tensors)
        self.tensors[key] = tensor
        return key


def _functional(model: Any) -> Any:
    """The functional graph behind a Functional or Sequential model."""
    keras = _keras()
    graph = model._functional if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_nodes_by_depth"):
        raise PruningError(
            f"Model '{model.name}' ({type(model).__name__}) is not a functional or built "
            "Sequential model, so its layer graph cannot be read. Use a prune ratio of 0."
        )
    return graph


def flatten(model: Any) -> FlatGraph:
    """Read a Functional or Sequential model's graph, inlining nested models."""
    graph = FlatGraph(model)
    top = _functional(model)
    graph.inputs = [graph.add_tensor(t) for t in top.inputs]
    names: dict[int, str] = {}
    graph.outputs = _walk(graph, top, graph.inputs, "", names, set())
    return graph


def _walk(
    graph: FlatGraph,
    fn: Any,
    input_keys: list[int],
    prefix: str,
    names: dict[int, str],
    used: set[str],
) -> list[int]:
    keras = _keras()
    scope = {id(t): key for t, key in zip(fn.inputs, input_keys, strict=True)}
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            op = node.operation
            if op is None or node.is_input:
                continue
            if any(id(t) not in scope for t in node.input_tensors):
                continue  # a node of another graph that uses the same layers
            in_keys = [scope[id(t)] for t in node.input_tensors]
            if isinstance(op, keras.Model):
                out_keys = _walk(graph, _functional(op), in_keys, f"{op.name}_", names, used)
            else:
                out_keys = [graph.add_tensor(t) for t in node.outputs]
                if id(op) not in names:
                    name = op.name if op.name not in used else f"{prefix}{op.name}"
                    while name in used:
                        name += "_"
                    used.add(name)
                    names[id(op)] = name
                graph.calls.append(Call(op, node, in_keys, out_keys, names[id(op)]))
            for t, key in zip(node.outputs, out_keys, strict=True):
                scope[id(t)] = key
    return [scope[id(t)] for t in fn.outputs]


# --------------------------------------------------------------------------- dependency graph


def _kind(layer: Any) -> str:
    keras = _keras()
    name = type(layer).__name__
    kind = _KIND.get(name)
    # Exact types only: a subclass may treat channels differently.
    if kind is None or getattr(keras.layers, name, None) is not type(layer):
        what = "layer" if isinstance(layer, keras.layers.Layer) else "operation"
        raise PruningError(
            f"Layer '{layer.name}' of type {name} is not supported by structured pruning "
            f"(a Keras {what} whose channel handling infertune does not know; supported: "
            "Conv, Dense, Depthwise/SeparableConv, normalization, activation, pooling, "
            "padding, dropout, merge, Concatenate, Flatten and Reshape layers). Use a prune "
            "ratio of 0."
        )
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise PruningError(
            f"Layer '{layer.name}' ({name}) uses data_format={fmt!r}; structured pruning "
            "supports channels_last models only. Use a prune ratio of 0."
        )
    if kind == "producer" and getattr(layer, "groups", 1) != 1:
        return "barrier"  # grouped convolution: kept whole
    return kind


def _axes(value: Any, rank: int) -> set[int]:
    """A layer's ``axis`` setting as a set of non-negative axes (``None``: none)."""
    if value is None:
        return set()
    values = value if isinstance(value, (list, tuple)) else [value]
    return {int(a) % rank for a in values}


def _l1(kernel: np.ndarray, channels: int | None = None) -> np.ndarray:
    """L1 norm of each output channel of a kernel (the last axis, or the last two merged).

    A depthwise kernel ``(..., in, multiplier)`` has ``in * multiplier`` output channels,
    channel ``c * multiplier + k`` being ``kernel[..., c, k]``: pass ``channels``.
    """
    n = kernel.shape[-1] if channels is None else channels
    norms: np.ndarray = np.abs(kernel).reshape(-1, n).sum(axis=0)
    return norms


class _Channels:
    """Union-find over channel elements, and over the sources that created them."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.source_of: list[int] = []
        self.source_parent: list[int] = []
        self.source_producer: list[bool] = []
        self.fixed: list[bool] = []
        self.importance: list[float] = []

    def new(self, n: int, *, fixed: bool, producer: bool = False) -> np.ndarray:
        start = len(self.parent)
        source = len(self.source_parent)
        self.source_parent.append(source)
        self.source_producer.append(producer)
        self.parent.extend(range(start, start + n))
        self.source_of.extend([source] * n)
        self.fixed.extend([fixed] * n)
        self.importance.extend([0.0] * n)
        return np.arange(start, start + n, dtype=np.int64)

    @staticmethod
    def _find(parent: list[int], i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def find(self, i: int) -> int:
        return self._find(self.parent, i)

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            rx, ry = self._find(self.parent, x), self._find(self.parent, y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)
            sx = self._find(self.source_parent, self.source_of[x])
            sy = self._find(self.source_parent, self.source_of[y])
            if sx != sy:
                self.source_parent[max(sx, sy)] = min(sx, sy)

    def fix(self, ids: np.ndarray) -> None:
        for i in ids.tolist():
            self.fixed[i] = True

    def add_importance(self, ids: np.ndarray, values: np.ndarray) -> None:
        for i, v in zip(ids.tolist(), values.tolist(), strict=True):
            self.importance[i] += float(v)


@dataclass
class DependencyGraph:
    """Every tensor's channels as element ids, and how elements are coupled.

    Attributes:
        graph: The flattened model.
        maps: Tensor key -> element id of each channel of its last axis.
        kinds: Layer name -> its kind (a key of :data:`SUPPORTED_LAYERS`).
        producers: Names of the layers whose output channels can be chosen, in call order.
        unit_of: Element id -> its unit (the root of its united set).
        group_of: Element id -> its group (the united set of its creating layers).
        fixed: Unit -> whether it must be kept.
        importance: Unit -> summed L1 norm of its coupled filters.
        prunable_group: Group -> whether a Conv/Dense-like layer created it (else its
            channels are the model's inputs or a barrier's output: never pruned).
        free_units: How many units pruning may remove (not fixed, in a producer's group).
    """

    graph: FlatGraph
    maps: dict[int, np.ndarray]
    kinds: dict[str, str]
    producers: list[str]
    unit_of: np.ndarray
    group_of: np.ndarray
    fixed: np.ndarray
    importance: np.ndarray
    prunable_group: np.ndarray
    free_units: int


def _last_dim(tensor: Any, layer: Any) -> int:
    dim = tensor.shape[-1] if len(tensor.shape) else None
    if dim is None:
        raise PruningError(
            f"Layer '{layer.name}' ({type(layer).__name__}) sees a tensor whose channel "
            "count is unknown; structured pruning needs known channel counts. Use a prune "
            "ratio of 0."
        )
    return int(dim)


def dependency_graph(model: Any) -> DependencyGraph:
    """Follow every channel through the model; a :class:`PruningError` on unknown layers."""
    graph = flatten(model)
    ch = _Channels()
    maps: dict[int, np.ndarray] = {}
    for key in graph.inputs:
        maps[key] = ch.new(_last_dim(graph.tensors[key], model), fixed=True)
    kinds: dict[str, str] = {}
    producers: list[str] = []
    first_input: dict[str, np.ndarray] = {}
    created: dict[str, np.ndarray] = {}
    for call in graph.calls:
        layer = call.layer
        kind = kinds.get(call.name) or _kind(layer)
        kinds[call.name] = kind
        ins = [maps[k] for k in call.inputs]
        out_tensors = [graph.tensors[k] for k in call.outputs]
        if kind not in ("merge", "concat"):
            if len(ins) != 1 or len(out_tensors) != 1:
                raise PruningError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) is called with "
                    f"{len(ins)} tensor inputs; structured pruning expects one. Use a prune "
                    "ratio of 0."
                )
            # A layer called more than once shares its weights: its inputs are coupled.
            if call.name in first_input:
                if len(first_input[call.name]) != len(ins[0]):
                    raise PruningError(
                        f"Layer '{layer.name}' is shared by inputs of different channel "
                        "counts. Use a prune ratio of 0."
                    )
                ch.union(first_input[call.name], ins[0])
            else:
                first_input[call.name] = ins[0]
        maps[call.outputs[0]] = _follow(ch, call, kind, ins, out_tensors[0], created, producers)
    for key in graph.outputs:
        ch.fix(maps[key])
    n = len(ch.parent)
    unit_of = np.array([ch.find(i) for i in range(n)], dtype=np.int64)
    source_root = np.array(
        [ch._find(ch.source_parent, s) for s in range(len(ch.source_parent))], dtype=np.int64
    )
    group_of = source_root[np.asarray(ch.source_of, dtype=np.int64)] if n else unit_of
    fixed = np.zeros(n, dtype=bool)
    fixed[unit_of[np.asarray(ch.fixed, dtype=bool)]] = True
    importance = np.zeros(n)
    np.add.at(importance, unit_of, np.asarray(ch.importance))
    producer_source = np.asarray(ch.source_producer, dtype=bool)
    prunable_group = np.zeros(len(ch.source_parent), dtype=bool)
    prunable_group[source_root[producer_source]] = True
    units = np.unique(unit_of)
    free = units[~fixed[units] & prunable_group[group_of[units]]]
    return DependencyGraph(
        graph=graph,
        maps=maps,
        kinds=kinds,
        producers=producers,
        unit_of=unit_of,
        group_of=group_of,
        fixed=fixed,
        importance=importance,
        prunable_group=prunable_group,
        free_units=len(free),
    )


def _follow(
    ch: _Channels,
    call: Call,
    kind: str,
    ins: list[np.ndarray],
    out: Any,
    created: dict[str, np.ndarray],
    producers: list[str],
) -> np.ndarray:
    """The element ids of a call's output channels (and the couplings it adds)."""
    layer = call.layer
    rank = len(out.shape)
    out_dim = _last_dim(out, layer)
    if kind == "producer":
        if call.name in created:
            return created[call.name]
        config = layer.get_config()
        if type(layer).__name__.startswith("SeparableConv"):
            depthwise = np.asarray(layer.depthwise_kernel)
            mid = np.repeat(ins[0], depthwise.shape[-1])
            ch.add_importance(mid, _l1(depthwise, len(mid)))
            kernel = np.asarray(layer.pointwise_kernel)
        else:
            kernel = np.asarray(layer.kernel)
        ids = ch.new(out_dim, fixed=config.get("activation") in _SOFTMAX, producer=True)
        ch.add_importance(ids, _l1(kernel))
        created[call.name] = ids
        producers.append(call.name)
        return ids
    if kind == "depthwise":
        depthwise = np.asarray(layer.kernel)  # (..., channels, multiplier)
        ids = np.repeat(ins[0], depthwise.shape[-1])
        ch.add_importance(ids, _l1(depthwise, len(ids)))
        return ids
    if kind == "per_channel":
        return ins[0]
    if kind == "elementwise":
        config = layer.get_config()
        across = config.get("activation") in _SOFTMAX or type(layer).__name__ == "Softmax"
        if across and (rank - 1) in _axes(config.get("axis", -1), rank):
            ch.fix(ins[0])  # a softmax across channels changes if one is removed
        return ins[0]
    if kind == "merge":
        full = [m for m in ins if len(m) == out_dim]
        for m in ins:
            if len(m) == out_dim:
                ch.union(full[0], m)
            else:
                ch.fix(m)  # broadcast along channels: its single channel stays
        return full[0]
    if kind == "concat":
        if int(layer.axis) % rank == rank - 1:
            return np.concatenate(ins)
        for m in ins[1:]:
            ch.union(ins[0], m)
        return ins[0]
    if kind in ("flatten", "reshape") and len(ins[0]) and out_dim % len(ins[0]) == 0:
        # Row-major order keeps the channel innermost: output index j is channel j % C.
        return np.tile(ins[0], out_dim // len(ins[0]))
    # A barrier (or a reshape that splits channels): it keeps its input channels whole,
    # and its output is new, fixed channels.
    ch.fix(ins[0])
    return ch.new(out_dim, fixed=True)


# --------------------------------------------------------------------------- plan


@dataclass
class LayerPlan:
    """What one layer becomes: its config and sliced weights, and its channel counts."""

    layer: Any
    name: str
    kind: str
    config: dict[str, Any]
    weights: list[np.ndarray]
    before: int
    after: int


@dataclass
class PrunePlan:
    """The flattened graph and, for every layer in it, its pruned config and weights."""

    graph: FlatGraph
    layers: dict[str, LayerPlan]
    changes: list[dict[str, Any]]


def check_prunable(model: Any) -> DependencyGraph:
    """The model's dependency graph, or a :class:`PruningError` saying why it cannot shrink."""
    dep = dependency_graph(model)
    if not dep.free_units:
        raise PruningError(
            f"Model '{model.name}' has no channels that structured pruning can remove: every "
            "Conv/Dense output feeds the model's outputs, its inputs or a layer that keeps "
            "its channels. Use a prune ratio of 0."
        )
    return dep


def choose_units(dep: DependencyGraph, ratio: float) -> np.ndarray:
    """Which units stay: per group, the most important ``1 - ratio`` (fixed ones always)."""
    keep = np.ones(len(dep.unit_of), dtype=bool)
    if ratio <= 0:
        return keep
    units = np.unique(dep.unit_of)
    by_group: dict[int, list[int]] = defaultdict(list)
    for unit in units.tolist():
        by_group[int(dep.group_of[unit])].append(unit)
    for group, members in by_group.items():
        if not dep.prunable_group[group]:
            continue
        ids = np.asarray(members)
        n_keep = max(1, round(len(ids) * (1.0 - ratio)))
        free = ids[~dep.fixed[ids]]
        n_free_keep = max(0, n_keep - (len(ids) - len(free)))
        order = np.argsort(-dep.importance[free], kind="stable")
        keep[free[order[n_free_keep:]]] = False
    return keep


def plan(model: Any, ratio: float) -> PrunePlan:
    """Decide which channels each layer keeps, and slice the weights accordingly.

    Every group of coupled channels loses the same fraction ``ratio`` of its units, the
    lowest summed L1 norm first (at least one unit stays). Layers that consume a pruned
    tensor have the matching input slices removed.
    """
    dep = check_prunable(model)
    keep_unit = choose_units(dep, ratio)
    keep = keep_unit[dep.unit_of]
    layers: dict[str, LayerPlan] = {}
    for call in dep.graph.calls:
        if call.name in layers:
            continue
        kind = dep.kinds[call.name]
        in_maps = [dep.maps[k] for k in call.inputs]
        out_map = dep.maps[call.outputs[0]]
        in_keep = np.flatnonzero(keep[in_maps[0]])
        out_keep = np.flatnonzero(keep[out_map])
        config = dict(call.layer.get_config())
        config["name"] = call.name
        weights = [np.asarray(w) for w in call.layer.get_weights()]
        rank = len(dep.graph.tensors[call.outputs[0]].shape)
        weights = _slice(call, kind, config, weights, in_keep, out_keep, len(in_maps[0]), rank)
        layers[call.name] = LayerPlan(
            call.layer, call.name, kind, config, weights, len(out_map), len(out_keep)
        )
    changes = [
        {
            "layer": name,
            "channels_before": layers[name].before,
            "channels_after": layers[name].after,
        }
        for name in dep.producers
    ]
    return PrunePlan(dep.graph, layers, changes)


def _take(array: Any, index: np.ndarray, axis: int = -1) -> Any:
    return np.take(np.asarray(array), index, axis=axis)


def _slice(
    call: Call,
    kind: str,
    config: dict[str, Any],
    weights: list[np.ndarray],
    in_keep: np.ndarray,
    out_keep: np.ndarray,
    in_dim: int,
    rank: int,
) -> list[np.ndarray]:
    """Slice one layer's weights (and update its config) to the kept channels."""
    layer = call.layer
    name = type(layer).__name__
    in_rank = len(call.node.input_tensors[0].shape) if call.node.input_tensors else rank
    if kind == "producer":
        if name.startswith("SeparableConv"):
            depthwise, pointwise, *bias = weights
            multiplier = depthwise.shape[-1]
            mid_keep = (in_keep[:, None] * multiplier + np.arange(multiplier)).reshape(-1)
            depthwise = _take(depthwise, in_keep, -2)
            pointwise = _take(_take(pointwise, mid_keep, -2), out_keep, -1)
            weights = [depthwise, pointwise, *(_take(b, out_keep) for b in bias)]
        else:
            if len(weights) not in (1, 2):
                raise PruningError(
                    f"Layer '{layer.name}' ({name}) has {len(weights)} weight arrays (LoRA or "
                    "quantized?); structured pruning expects a kernel and a bias. Use a prune "
                    "ratio of 0."
                )
            kernel, *bias = weights
            kernel = _take(_take(kernel, in_keep, -2), out_keep, -1)
            weights = [kernel, *(_take(b, out_keep) for b in bias)]
        config["filters" if "filters" in config else "units"] = len(out_keep)
    elif kind == "depthwise":
        depthwise, *bias = weights
        weights = [_take(depthwise, in_keep, -2), *(_take(b, out_keep) for b in bias)]
    elif kind == "per_channel":
        weights = _slice_per_channel(layer, name, config, weights, in_keep, in_dim, in_rank)
    elif kind == "reshape":
        target = list(config["target_shape"])
        if target and target[-1] != -1 and in_dim:
            target[-1] = int(target[-1]) // in_dim * len(in_keep)
        config["target_shape"] = tuple(target)
    elif kind == "elementwise" and config.get("noise_shape") is not None:
        noise = list(config["noise_shape"])
        if noise and noise[-1] not in (None, 1):
            noise[-1] = None  # the channel count changed; follow the input
        config["noise_shape"] = tuple(noise)
    return weights


def _slice_per_channel(
    layer: Any,
    name: str,
    config: dict[str, Any],
    weights: list[np.ndarray],
    keep: np.ndarray,
    in_dim: int,
    rank: int,
) -> list[np.ndarray]:
    last = rank - 1
    if name in ("BatchNormalization", "LayerNormalization", "Normalization"):
        if last not in _axes(config.get("axis"), rank):
            return weights  # statistics over other axes: channels are independent
        if name == "Normalization":
            _norm_config(config, keep, in_dim)
        return [w if w.ndim == 0 else _take(w, keep) for w in weights]
    if name == "PReLU":
        if last in {int(a) % rank for a in (config.get("shared_axes") or [])}:
            return weights
        return [_take(w, keep) for w in weights]
    # Rescaling: a scale/offset per channel lives in the config.
    for key in ("scale", "offset"):
        value = config.get(key)
        if value is not None and np.ndim(value) >= 1 and np.shape(value)[-1] == in_dim:
            config[key] = _take(value, keep).tolist()
    return weights


def _norm_config(config: dict[str, Any], keep: np.ndarray, in_dim: int) -> None:
    """Normalization given fixed ``mean``/``variance``: slice them too."""
    for key in ("mean", "variance"):
        value = config.get(key)
        if value is not None and np.ndim(value) >= 1 and np.shape(value)[-1] == in_dim:
            config[key] = _take(value, keep).tolist()


# --------------------------------------------------------------------------- MACs


def _call_macs(call: Call, tensors: dict[int, Any]) -> int:
    """MACs of one call of a Conv/Dense-like layer (0 for any other layer)."""
    layer = call.layer
    out_shape = tensors[call.outputs[0]].shape if call.outputs else ()
    total = 0
    for attr in ("kernel", "depthwise_kernel", "pointwise_kernel"):
        weights = getattr(layer, attr, None)
        if weights is None or not hasattr(weights, "shape"):
            continue
        shape = out_shape
        if type(layer).__name__.endswith("Transpose"):
            shape = call.node.input_tensors[0].shape  # one MAC per input position
        positions = 1
        for dim in shape[1:-1]:  # spatial positions (1 for Dense on a vector)
            positions *= int(dim or 1)
        # Conv (kh, kw, in, out), depthwise (kh, kw, channels, multiplier), pointwise and
        # Dense (in, out) kernels all do one MAC per kernel element per output position.
        per_position = 1
        for dim in weights.shape:
            per_position *= int(dim)
        total += positions * per_position
    return total


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one sample through a Keras model's Conv and Dense layers."""
    keras = _keras()
    try:
        graph = flatten(model)
    except PruningError:
        graph = None
    if graph is not None:
        return sum(_call_macs(call, graph.tensors) for call in graph.calls)
    # Not a functional graph (e.g. a subclassed model): each layer's own output shape.
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_macs(layer)
            continue
        try:
            node = layer._inbound_nodes[0]
        except (AttributeError, IndexError):
            continue
        tensors = {0: node.outputs[0]}
        total += _call_macs(Call(layer, node, [], [0], layer.name), tensors)
    return total
