"""The flags several commands share: one name, one meaning and one help text each.

A flag that was renamed keeps its old name as a hidden alias (:func:`add_renamed`): it still
works, and says on stderr, in one line, which flag replaced it. Nothing here loads TensorFlow.
"""

from __future__ import annotations

import argparse
import sys

from ..precisions import PRECISIONS  # one vocabulary for train, eval, predict and export

CROPS = (1, 10, 12, 144)  # inception's crop schemes (inception.preprocessing.crops.SCHEMES)
PRECISION_HELP = "arithmetic: auto, float32, bfloat16 or float16"
TRAIN_PRECISION_WHY = (
    "bfloat16 on TPUs and GPUs of compute capability >= 8.0, float16 with loss scaling on older "
    "GPUs, float32 on CPUs: training keeps float32 weights and computes in the lower precision "
    "(mixed precision) where the hardware is faster at it, at no cost in accuracy"
)
INFERENCE_PRECISION_WHY = (
    "BatchNorm folded, reproduces the published accuracy; auto computes in bfloat16 or float16 "
    "where the hardware is faster at it, at a small cost in accuracy"
)
EXPORT_PRECISION_WHY = (
    "a served model computes in bfloat16 where this machine has it, for throughput, behind the "
    "same float32/string signatures"
)
MODEL_HELP = (
    "a registered model name or a .keras file (eval, predict: also an exported .onnx, .tflite "
    "or OpenVINO .xml file); NAME,NAME,... averages an ensemble"
)
WEIGHTS_HELP = (
    "one for all models or one per model (comma-separated): 'imagenet' (default: each model's "
    "pretrained entry), a manifest entry, 'none' (random init, for smoke tests), a .weights.h5 "
    "or .keras path; class names, input size and preprocessing come with the weights"
)
IMAGE_SIZE_HELP = "input height = width (default: the model's own, 299 for the registered models)"
BATCH_SIZE_HELP = "images per step"
CLASS_NAMES_HELP = (
    "the model's class names, one per line in output order (default: those that come with "
    "the weights)"
)
DATA_CLASSES_HELP = (
    "image folders: the data's class names, one per line in label order (default: the "
    "sub-folders, sorted)"
)
DATA_HELP = "imagenet2012, tfds:NAME, or an image folder (one sub-folder per class)"
DATA_DIR_HELP = "tfds data dir (imagenet2012: the ILSVRC tars in DIR/downloads/manual)"
TOP_K_HELP = "classes reported per image (default 5)"
CROPS_HELP = "crops per image, probabilities averaged over them (default 1)"
MICRO_BATCH_HELP = (
    "crops per forward pass (default 16 at 299 px per device, more for smaller inputs), split "
    "evenly across the devices; bounds memory whatever the number of crops"
)
ENSEMBLE_WEIGHTS_HELP = "comma-separated weight per model (default: equal)"
CLASSES_HELP = "classes of a randomly initialised model (--weights none)"
VARIANT_HELP = "architecture variant: slim (default) or paper"
DEVICES_HELP = (
    "local devices to run on: a count, or all (default: every GPU, else every CPU device; "
    "TensorFlow: MirroredStrategy, JAX: DataParallel; results as on one device); an exported "
    ".onnx, .tflite or .xml model runs in its own runtime on one device, so with one only 1 or "
    "all (one device) is accepted"
)
QUIET_HELP = "print only the result: no progress and no notes"
JSON_HELP = "print JSON instead of text"


def warn(parser: argparse.ArgumentParser, message: str) -> None:
    print(f"{parser.prog}: warning: {message}", file=sys.stderr, flush=True)


class Renamed(argparse.Action):
    """The old name of a flag: stores into the new flag's ``dest`` (its values translated by
    ``values``, an old-to-new mapping), hidden from ``--help``, with one warning line."""

    def __init__(self, option_strings, dest, new, values=None, **kwargs):
        self.new, self.renamed_values = new, dict(values or {})
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if self.nargs == 0:
            values = self.const
        message = f"{option_string} is renamed {self.new}"
        if values in self.renamed_values:
            message += f", {values} is {self.renamed_values[values]}"
            values = self.renamed_values[values]
        warn(parser, message + "; the old name still works for now")
        setattr(namespace, self.dest, values)


def add_renamed(parser, old: str, action: argparse.Action, values=None) -> None:
    """``old`` as a hidden, warned alias of ``action`` (the flag replacing it); ``values`` maps
    old value names to new ones."""
    kwargs = dict(dest=action.dest, new=action.option_strings[0])
    if action.nargs == 0:
        kwargs.update(nargs=0, const=action.const)
    else:
        choices = None if action.choices is None else [*action.choices, *(values or {})]
        kwargs.update(type=action.type, choices=choices, metavar=action.metavar, values=values)
    parser.add_argument(old, action=Renamed, **kwargs)


def require(parser, args, *flags: str) -> None:
    """argparse's own error for flags that are required but may come by an old name."""
    missing = [f for f in flags if getattr(args, f.lstrip("-").replace("-", "_")) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


# ------------------------------------------------------------------------------ the builders


def add_model(p, **kwargs):
    """``--model``: names or .keras files, an ensemble when several (eval, predict, export)."""
    return p.add_argument("--model", metavar="MODEL", help=MODEL_HELP, **kwargs)


def add_weights(p):
    from ..weights.manifest import DEFAULT_WEIGHTS  # no Keras

    return p.add_argument("--weights", default=DEFAULT_WEIGHTS, help=WEIGHTS_HELP)


def add_image_size(p, per_model: bool = False):
    """``--image-size``: one value (``int``); ``per_model``: one, or one per model (text)."""
    if per_model:
        help_ = IMAGE_SIZE_HELP + "; one for all models or one per model (comma-separated)"
        return p.add_argument("--image-size", metavar="N", help=help_)
    return p.add_argument("--image-size", type=int, metavar="N", help=IMAGE_SIZE_HELP)


def add_batch_size(p, default: str):
    help_ = f"{BATCH_SIZE_HELP} (default: {default})"
    return p.add_argument("--batch-size", type=int, metavar="N", help=help_)


def add_precision(p, default: str, why: str):
    """``--precision``: the same choices everywhere; ``default`` and ``why`` are the command's."""
    help_ = f"{PRECISION_HELP} (default {default}: {why})"
    return p.add_argument("--precision", choices=PRECISIONS, default=default, help=help_)


def add_class_names(p):
    return p.add_argument("--class-names", metavar="FILE", help=CLASS_NAMES_HELP)


def add_data_classes(p):
    return p.add_argument("--data-classes", metavar="FILE", help=DATA_CLASSES_HELP)


def add_data(p):
    return p.add_argument("--data", required=True, help=DATA_HELP)


def add_data_dir(p):
    return p.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)


def add_top_k(p):
    return p.add_argument("--top-k", type=int, default=5, metavar="K", help=TOP_K_HELP)


def add_crops(p):
    return p.add_argument("--crops", type=int, default=1, choices=CROPS, help=CROPS_HELP)


def add_micro_batch(p):
    return p.add_argument("--micro-batch", type=int, metavar="N", help=MICRO_BATCH_HELP)


def add_ensemble_weights(p):
    return p.add_argument("--ensemble-weights", metavar="W,W,...", help=ENSEMBLE_WEIGHTS_HELP)


def add_classes(p):
    return p.add_argument("--classes", type=int, metavar="N", help=CLASSES_HELP)


def add_variant(p):
    return p.add_argument("--variant", help=VARIANT_HELP)


def add_devices(p):
    """``--devices``: eval and predict (checked by ``inception.devices.parse_count``)."""
    return p.add_argument("--devices", default="all", metavar="N", help=DEVICES_HELP)


def add_quiet(p):
    return p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def add_json(p):
    return p.add_argument("--json", action="store_true", help=JSON_HELP)


def add_max_jpeg_scans(p):
    from ..serving.limits import DEFAULT_MAX_JPEG_SCANS  # plain constants, no TensorFlow

    return p.add_argument(
        "--max-jpeg-scans",
        type=int,
        default=DEFAULT_MAX_JPEG_SCANS,
        metavar="N",
        help="most scans a JPEG may have (a progressive JPEG is decoded once per scan; "
        f"encoders write about 10) ({DEFAULT_MAX_JPEG_SCANS})",
    )


def add_max_image_pixels(p):
    from ..serving.limits import DEFAULT_MAX_IMAGE_PIXELS  # plain constants, no TensorFlow

    return p.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        metavar="N",
        help=f"refuse images whose header declares more pixels ({DEFAULT_MAX_IMAGE_PIXELS:,})",
    )
