"""Name maps from our layers to the tensors of each source format.

Our layer names are TF-slim scopes with ``/`` written as ``.`` (``Mixed_6b.Branch_1.Conv2d_0b_1x7``
and its ``.BatchNorm``). Each map turns one target weight, ``(layer name, weight name)``, into the
key of the source tensor that fills it, plus the layout change it needs:

* TF-slim (``tf.train.Saver`` checkpoints): the scope itself, under ``InceptionV4/`` or
  ``InceptionResnetV2/``; layouts are already Keras' (HWIO kernels, ``(in, out)`` dense).
* timm (safetensors of ``timm.models.inception_v4`` / ``inception_resnet_v2``): module paths
  such as ``features.11.branch2.3.conv.weight``; torch kernels are OIHW and linear ``(out, in)``.
* Keras (``keras.applications.InceptionResNetV2`` h5): see ``keras_layer_pairs``; the BN'd
  convolutions there carry auto-generated names, matched by creation order with shape checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SLIM_ROOT = {"inception_v4": "InceptionV4", "inception_resnet_v2": "InceptionResnetV2"}
RESNET_BLOCK = re.compile(r"block(35|17|8)_(\d+)$")
TAG = re.compile(r"_(\d[a-z])_")


@dataclass(frozen=True)
class Key:
    """The source tensor for one target weight and how to lay it out (``None``, ``"conv"``:
    OIHW -> HWIO, ``"dense"``: (out, in) -> (in, out))."""

    name: str
    layout: str | None = None


def conv_of_bn(layer_name: str) -> str:
    return layer_name[: -len(".BatchNorm")]


def is_aux(layer_name: str) -> bool:
    return layer_name.startswith("AuxLogits.")


def is_top(layer_name: str) -> bool:
    return layer_name.startswith("Logits.")


def last_block8(layer_names) -> int:
    """Index of the final (linear) Inception-ResNet-C block: slim's ``Block8``."""
    ids = [int(m.group(2)) for n in layer_names if (m := RESNET_BLOCK.match(n.split(".")[0]))
           and m.group(1) == "8"]  # fmt: skip
    return max(ids, default=0)


# --- TF-slim -------------------------------------------------------------------------------------

SLIM_VAR = {"kernel": "weights", "bias": "biases", "beta": "beta", "gamma": "gamma",
            "moving_mean": "moving_mean", "moving_variance": "moving_variance"}  # fmt: skip


def slim_scope(model_name: str, layer_name: str, n_block8: int) -> str:
    """``block17_3.Branch_1.Conv2d_0b_1x7`` -> ``InceptionResnetV2/Repeat_1/block17_3/...``."""
    parts = layer_name.split(".")
    head = parts[0]
    m = RESNET_BLOCK.match(head)
    if m:
        kind, i = m.group(1), int(m.group(2))
        if kind == "8" and i == n_block8:
            head = "Block8"
        else:
            head = f"{ {'35': 'Repeat', '17': 'Repeat_1', '8': 'Repeat_2'}[kind] }/{head}"
    elif head == "AuxLogits":
        if model_name == "inception_v4":
            parts[1] = {"Logits": "Aux_logits"}.get(parts[1], parts[1])
        else:
            parts[1] = {"Conv2d_2a": "Conv2d_2a_5x5"}.get(parts[1], parts[1])
    return "/".join([SLIM_ROOT[model_name], head, *parts[1:]])


def slim_key(model_name, layer_name, weight, n_block8):
    return Key(f"{slim_scope(model_name, layer_name, n_block8)}/{SLIM_VAR[weight]}")


SLIM_BOOKKEEPING = re.compile(
    r"(^|/)global_step$|/(ExponentialMovingAverage|RMSProp(_1)?|Momentum)$"
)


# --- timm ----------------------------------------------------------------------------------------

TIMM_V4_FEATURES = (
    ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Mixed_3a", "Mixed_4a", "Mixed_5a"]
    + [f"Mixed_5{c}" for c in "bcde"] + ["Mixed_6a"] + [f"Mixed_6{c}" for c in "bcdefgh"]
    + ["Mixed_7a"] + [f"Mixed_7{c}" for c in "bcd"]
)  # fmt: skip
TIMM_V4_INCEPTION_C = {  # timm names Inception-C's convs flat (branch, tag) -> attribute
    ("Branch_1", "0a"): "branch1_0", ("Branch_1", "0b"): "branch1_1a",
    ("Branch_1", "0c"): "branch1_1b", ("Branch_2", "0a"): "branch2_0",
    ("Branch_2", "0b"): "branch2_1", ("Branch_2", "0c"): "branch2_2",
    ("Branch_2", "0d"): "branch2_3a", ("Branch_2", "0e"): "branch2_3b",
}  # fmt: skip
TIMM_BN = {"beta": "bias", "gamma": "weight", "moving_mean": "running_mean",
           "moving_variance": "running_var"}  # fmt: skip
TIMM_BOOKKEEPING = re.compile(r"\.num_batches_tracked$")


def op_tag(op_name: str) -> str:
    """``Conv2d_0b_1x7`` -> ``0b``; ``Conv2d_1x1`` (a branch's only conv) -> ``""``."""
    m = TAG.search(op_name + "_")
    return m.group(1) if m else ""


class TimmNames:
    """Maps our conv/dense layer names to timm module paths, given all layer names of the model
    (a branch's position index in timm's ``nn.Sequential`` counts its pooling op too)."""

    def __init__(self, model_name: str, layer_names):
        self.model_name = model_name
        self.n_block8 = last_block8(layer_names)
        self.branch_ops: dict[tuple[str, str], list[str]] = {}
        for name in layer_names:
            parts = name.split(".")
            if (
                len(parts) == 3
                and parts[1].startswith("Branch_")
                and (parts[2].startswith(("Conv2d_", "MaxPool_", "AvgPool_")))
            ):
                self.branch_ops.setdefault((parts[0], parts[1]), []).append(parts[2])
        for ops in self.branch_ops.values():
            ops.sort(key=op_tag)

    def module(self, layer_name: str) -> str:
        parts = layer_name.split(".")
        head = parts[0]
        if head == "Logits":
            return "last_linear" if self.model_name == "inception_v4" else "classif"
        if head == "AuxLogits":
            raise KeyError("timm checkpoints have no auxiliary head")
        if self.model_name == "inception_v4":
            prefix = f"features.{TIMM_V4_FEATURES.index(head)}"
            if len(parts) == 1:
                return prefix
            if head in ("Mixed_3a", "Mixed_5a"):
                return f"{prefix}.conv"
            if head.startswith("Mixed_7") and head != "Mixed_7a":
                flat = TIMM_V4_INCEPTION_C.get((parts[1], op_tag(parts[2])))
                if flat:
                    return f"{prefix}.{flat}"
            return f"{prefix}.{self._branch(parts)}"
        m = RESNET_BLOCK.match(head)
        if m:
            kind, i = m.group(1), int(m.group(2))
            if kind == "8" and i == self.n_block8:
                prefix = "block8"
            else:
                prefix = f"{ {'35': 'repeat', '17': 'repeat_1', '8': 'repeat_2'}[kind] }.{i - 1}"
        elif head.startswith("Conv2d_"):
            return "conv2d_" + op_tag(head)  # stem and Conv2d_7b_1x1
        else:
            prefix = head.lower()  # Mixed_5b, Mixed_6a, Mixed_7a
        if len(parts) == 2 and parts[1] == "Conv2d_1x1":
            return f"{prefix}.conv2d"  # the linear 1x1 conv of a residual block
        return f"{prefix}.{self._branch(parts)}"

    def _branch(self, parts) -> str:
        branch = f"branch{parts[1].removeprefix('Branch_')}"
        ops = self.branch_ops[(parts[0], parts[1])]
        return branch if len(ops) == 1 else f"{branch}.{ops.index(parts[2])}"

    def key(self, layer_name: str, weight: str, kind: str) -> Key:
        if kind == "bn":
            return Key(f"{self.module(conv_of_bn(layer_name))}.bn.{TIMM_BN[weight]}")
        module = self.module(layer_name)
        if kind == "conv_bn":  # timm's ConvNormAct: .conv + .bn
            return Key(f"{module}.conv.weight", "conv")
        suffix = "weight" if weight == "kernel" else "bias"
        return Key(f"{module}.{suffix}", "dense" if kind == "dense" else "conv")


# --- Keras applications --------------------------------------------------------------------------

KERAS_AUTO = re.compile(r"^(conv2d|batch_normalization)(?:_(\d+))?$")


def keras_named(layer_name: str) -> str | None:
    """Our layers that keras.applications.InceptionResNetV2 names explicitly."""
    m = RESNET_BLOCK.match(layer_name.split(".")[0])
    if m and layer_name.endswith(".Conv2d_1x1") and layer_name.count(".") == 1:
        return f"{layer_name.split('.')[0]}_conv"
    return {"Conv2d_7b_1x1": "conv_7b", "Conv2d_7b_1x1.BatchNorm": "conv_7b_bn",
            "Logits.Logits": "predictions"}.get(layer_name)  # fmt: skip


def keras_creation_order(conv_names, all_layer_names) -> list[str]:
    """Sorts our conv-BN layer names into the order keras.applications creates them: block by
    block along the network, branch by branch, and within a branch by slim's tag (0a, 0b, ...)."""
    first_seen: dict[str, int] = {}
    for i, name in enumerate(all_layer_names):
        first_seen.setdefault(name.split(".")[0], i)

    def order(name):
        parts = name.split(".")
        branch = int(parts[1].removeprefix("Branch_")) if len(parts) > 2 else -1
        return first_seen[parts[0]], branch, op_tag(parts[-1])

    return sorted(conv_names, key=order)


def keras_auto_order(names, prefix: str) -> list[str]:
    """Auto-named keras layers (``conv2d``, ``conv2d_1``, ...) in creation order."""
    found = [(int(m.group(2) or 0), n) for n in names if (m := KERAS_AUTO.match(n))
             and m.group(1) == prefix]  # fmt: skip
    return [n for _, n in sorted(found)]
