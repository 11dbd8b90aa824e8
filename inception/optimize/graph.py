"""The graph rewrite behind ``optimize_for_inference``: one functional Keras model in, a new one
out, layer by layer in topological order (``keras.models.clone_model`` walks the graph).

* **Fold.** A ``Conv1D``/``Conv2D``/``Conv3D`` without activation absorbs the layers that alone
  consume its output (each called once, on that tensor only, the tensor neither used elsewhere
  nor a model output): a ``BatchNormalization`` over its channel axis, then a ``Rescaling`` by
  scalars (the Inception-ResNets' residual scale), in that order, either or both::

      BatchNorm:  s = gamma / sqrt(moving_variance + epsilon)   (gamma = 1 when scale=False)
                  t = beta - moving_mean * s                     (beta = 0 when center=False)
      Rescaling:  s = scale, t = offset
      kernel' = kernel * s (per output channel),  bias' = bias * s + t  (bias = 0 without one)

  computed in float64. The conv keeps its name and gains a bias; the absorbed layers are gone.
  This is what those layers compute at inference, up to float rounding.
* **Precision.** Every other layer is copied with its config and weights, under the dtype policy
  of the chosen precision: ``float32``; or, for ``bfloat16``/``float16``, that dtype for weights
  and arithmetic (``LOW_POLICY``), except normalisation layers (float32 weights and statistics,
  ``mixed_*``), layers with a softmax, and the layers that produce the model's outputs (all three
  ``float32``), so the model takes and returns float32 and its probabilities are float32's.
* Nested functional models are rewritten the same way (``optimize.optimize_model`` passes itself
  in as ``rewrite_nested``).
"""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np
from keras import layers

FOLDABLE_CONVS = (layers.Conv1D, layers.Conv2D, layers.Conv3D)
NORMALIZATIONS = (
    layers.BatchNormalization,
    layers.LayerNormalization,
    layers.GroupNormalization,
)
SOFTMAX = ("softmax", "log_softmax")
# Policy of the layers that run in the low precision: weights stored in it ("bfloat16") rather
# than float32 weights cast at every call ("mixed_bfloat16"); see docs/inference.md.
LOW_POLICY = {"bfloat16": "bfloat16", "float16": "float16"}
FLOAT16_MAX = float(np.finfo(np.float16).max)


def functional_config(model) -> dict:
    """The functional graph of ``model`` as Keras serialises it (``layers``, ``output_layers``),
    also for subclasses of the functional model that override ``get_config``."""
    from keras.src.models.functional import Functional

    return Functional.get_config(model)


def _histories(value):
    """Every ``[layer name, node index, tensor index]`` referenced in a serialised structure."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            yield tuple(value["config"]["keras_history"])
            return
        for item in value.values():
            yield from _histories(item)
    elif isinstance(value, (list, tuple)):
        if len(value) == 3 and isinstance(value[0], str) and isinstance(value[1], int):
            yield tuple(value)
            return
        for item in value:
            yield from _histories(item)


def graph_facts(model) -> tuple[dict[str, list[str]], set[str]]:
    """``(chains, outputs)``: for each foldable conv, the names of the layers it absorbs (a
    BatchNorm, then possibly a scalar ``Rescaling``), and the names of the layers whose outputs
    are model outputs."""
    config = functional_config(model)
    entries = {entry["name"]: entry for entry in config["layers"]}
    uses = Counter()  # tensor -> how many times it is consumed (a model output counts once)
    consumer = {}  # tensor -> the layer that consumes it (meaningful when used once)
    for entry in config["layers"]:
        for node in entry.get("inbound_nodes", []):
            sources = list(_histories(node))
            uses.update(sources)
            for source in sources:
                consumer[source] = (entry["name"], len(sources))
    output_history = list(_histories(config["output_layers"]))
    uses.update(output_history)
    outputs = {name for name, _, _ in output_history}

    def follower(name):
        """The layer that alone consumes ``name``'s only output, called once on it alone."""
        tensor = (name, 0, 0)
        if len(entries[name].get("inbound_nodes", [])) != 1 or uses[tensor] != 1:
            return None
        if tensor not in consumer or consumer[tensor][1] != 1:
            return None
        nxt = consumer[tensor][0]
        return model.get_layer(nxt) if len(entries[nxt].get("inbound_nodes", [])) == 1 else None

    chains = {}
    for name, entry in entries.items():
        conv = model.get_layer(name)
        if not (
            type(conv) in FOLDABLE_CONVS
            and entry["config"].get("activation") in (None, "linear")
            and not getattr(conv, "lora_enabled", False)
            and getattr(conv.dtype_policy, "quantization_mode", None) is None
        ):
            continue
        chain, nxt = [], follower(name)
        if type(nxt) is layers.BatchNormalization and _over_channels(nxt, conv):
            chain.append(nxt.name)
            nxt = follower(nxt.name)
        if _scalar_rescaling(nxt):
            chain.append(nxt.name)
        if chain:
            chains[name] = chain
    return chains, outputs


def _scalar_rescaling(layer) -> bool:
    if type(layer) is not layers.Rescaling:
        return False
    return all(isinstance(v, (int, float)) for v in (layer.scale, layer.offset))


def _over_channels(bn, conv) -> bool:
    """Whether ``bn`` normalises ``conv``'s output channels."""
    channels = conv.rank + 1 if conv.data_format == "channels_last" else 1
    return bn.axis % (conv.rank + 2) == channels


def _numpy64(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable)).astype(np.float64)


def fold_weights(conv, absorbed) -> tuple[np.ndarray, np.ndarray]:
    """The kernel and bias of the one conv that computes ``absorbed[-1](...(conv(x)))``."""
    kernel = _numpy64(conv.kernel)
    filters = kernel.shape[-1]
    bias = _numpy64(conv.bias) if conv.use_bias else np.zeros(filters)
    for layer in absorbed:
        if isinstance(layer, layers.BatchNormalization):
            gamma = _numpy64(layer.gamma) if layer.scale else np.ones(filters)
            beta = _numpy64(layer.beta) if layer.center else np.zeros(filters)
            scale = gamma / np.sqrt(_numpy64(layer.moving_variance) + float(layer.epsilon))
            shift = beta - _numpy64(layer.moving_mean) * scale
        else:  # Rescaling: x * scale + offset
            scale, shift = float(layer.scale), float(layer.offset)
        kernel, bias = kernel * scale, bias * scale + shift
    return kernel, bias


def layer_policy(layer, config: dict, precision: str, produces_output: bool) -> str | None:
    """The dtype policy of ``layer``'s copy, ``None`` to keep its own (non-float layers)."""
    if "float" not in str(layer.compute_dtype):
        return None
    if precision == "float32" or produces_output:
        return "float32"
    if isinstance(layer, layers.Softmax) or config.get("activation") in SOFTMAX:
        return "float32"
    if isinstance(layer, NORMALIZATIONS):
        return f"mixed_{precision}"
    return LOW_POLICY[precision]


def rewrite(model, precision: str, fold: bool, rewrite_nested, folded: list[str]):
    """A new functional model computing what ``model`` computes (see the module docstring); the
    names of the folded convs are appended to ``folded``."""
    chains, outputs = graph_facts(model)
    if not fold:
        chains = {}
    absorbed = {name for chain in chains.values() for name in chain}
    origin, weighted = {}, set()

    def clone(layer):
        if isinstance(layer, keras.Model):
            new = rewrite_nested(layer)
            origin[id(new)] = layer
            weighted.add(id(new))
            return new
        if layer.name in absorbed:
            origin[id(layer)] = layer
            return layer  # never called: call() passes the folded conv's output through
        config = layer.get_config()
        chain = chains.get(layer.name, [])
        if chain:
            config.update(use_bias=True, bias_initializer="zeros", bias_regularizer=None,
                          bias_constraint=None)  # fmt: skip
        is_output = layer.name in outputs or any(name in outputs for name in chain)
        policy = layer_policy(layer, config, precision, is_output)
        if policy is not None:
            config["dtype"] = policy
        new = type(layer).from_config(config)
        origin[id(new)] = layer
        return new

    def call(new, *args, **kwargs):
        layer = origin[id(new)]
        if new is layer and layer.name in absorbed:
            return args[0]
        out = new(*args, **kwargs)
        if id(new) not in weighted:
            weighted.add(id(new))
            if layer.name in chains:
                weights = fold_weights(layer, [model.get_layer(n) for n in chains[layer.name]])
                _check_range(layer.name, weights, new.compute_dtype)
                folded.append(layer.name)
            else:
                weights = layer.get_weights()
            new.set_weights(weights)
        return out

    return keras.models.clone_model(model, clone_function=clone, call_function=call)


def _check_range(name, arrays, dtype):
    if str(dtype) != "float16":
        return
    largest = max(float(np.max(np.abs(a))) for a in arrays)
    if largest > FLOAT16_MAX:
        raise ValueError(
            f"folding {name} gives weights up to {largest:.3g}, beyond float16's {FLOAT16_MAX:g}: "
            "use precision='bfloat16' or 'float32'."
        )
