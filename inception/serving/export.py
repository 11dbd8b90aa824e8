"""``inception export``: SavedModels in the layout ``tensorflow_model_server`` loads.

``DIR/MODEL/VERSION/`` holds one SavedModel with three signatures (see ``serve/README.md``):

* ``serving_default``: ``images`` (string ``[batch]``: encoded JPEG/PNG/GIF/BMP of any size) ->
  ``classes`` (string ``[batch, k]``), ``class_ids`` (int64 ``[batch, k]``), ``scores`` (float
  ``[batch, k]``) and ``probabilities`` (float ``[batch, num_classes]``);
* ``predict_pixels``: ``pixels`` (float ``[batch, size, size, 3]``, RGB in [0, 255], already
  resized) -> the same outputs;
* ``classify``: the Classify API (method ``tensorflow/serving/classify``): ``inputs`` (serialized
  ``tf.Example`` with an ``image/encoded`` bytes feature) -> ``classes``, ``scores``.

Several ``--model`` names make one ensemble SavedModel whose probabilities are the average of
the members' (each at its own input size; 1001-class members drop ``background`` when mixed
with 1000-class ones).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CLASSIFY_METHOD = "tensorflow/serving/classify"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


@dataclass
class Member:
    """One network of the exported model: a Keras classifier and the input size it is run at."""

    model: object
    image_size: int


def combine(members: list[Member]):
    """The model the signatures run: ``(keras_model, image_size, takes_raw_pixels)``.

    One member is used as is (inputs scaled to [-1, 1] in the graph). Several become an
    ``inception.Ensemble``: RGB [0, 255] in at the largest member size, each member resized,
    preprocessed and label-aligned inside, averaged probabilities out.
    """
    if not members:
        raise ValueError("nothing to export: pass at least one model.")
    if len(members) == 1:
        return members[0].model, members[0].image_size, False
    import inception

    ensemble = inception.Ensemble([m.model for m in members])
    return ensemble, int(ensemble.image_size[0]), True


def num_outputs(model) -> int:
    return int(model.outputs[0].shape[-1])


def build_archive(
    members: list[Member],
    class_names: list[str],
    *,
    top_k: int = 5,
    crop_fraction: float = 0.875,
    max_image_pixels: int | None = None,
):
    """A ``keras.export.ExportArchive`` with the three serving signatures."""
    import keras
    import tensorflow as tf

    from . import graph

    max_image_pixels = max_image_pixels or graph.DEFAULT_MAX_IMAGE_PIXELS
    model, size, raw_pixels = combine(members)
    num_classes = num_outputs(model)
    if len(class_names) != num_classes:
        raise ValueError(
            f"{len(class_names)} class names for a model with {num_classes} outputs; pass a "
            "--labels file with one name per line for each output."
        )
    top_k = min(top_k, num_classes)
    names = tf.constant(class_names)

    def head(probabilities):
        scores, ids = tf.math.top_k(probabilities, k=top_k)
        return {
            "classes": tf.gather(names, ids),
            "class_ids": tf.cast(ids, tf.int64),
            "scores": scores,
            "probabilities": probabilities,
        }

    # One traced forward pass shared by the three signatures (traced and saved once).
    @tf.function(
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)], autograph=False
    )
    def from_pixels(pixels):  # RGB [0, 255] at ``size``
        if raw_pixels:
            return tf.cast(model(pixels, training=False), tf.float32)
        return graph.to_probabilities(model, pixels)

    def from_encoded(images):
        def one(contents):
            return graph.crop_and_resize(
                graph.decode(contents, max_image_pixels), size, crop_fraction
            )

        pixels = tf.map_fn(one, images, fn_output_signature=tf.TensorSpec([size, size, 3]))
        return from_pixels(pixels)

    def serving_default(images):
        return head(from_encoded(images))

    def predict_pixels(pixels):
        return head(from_pixels(pixels))

    def classify(inputs):
        features = tf.io.parse_example(
            inputs, {"image/encoded": tf.io.FixedLenFeature([], tf.string)}
        )
        out = head(from_encoded(features["image/encoded"]))
        return {"classes": out["classes"], "scores": out["scores"]}

    archive = keras.export.ExportArchive()
    archive.track(model)
    string_batch = [tf.TensorSpec([None], tf.string, name="images")]
    archive.add_endpoint("serving_default", serving_default, string_batch)
    archive.add_endpoint(
        "predict_pixels", predict_pixels, [tf.TensorSpec([None, size, size, 3], tf.float32)]
    )
    archive.add_endpoint("classify", classify, [tf.TensorSpec([None], tf.string)])
    return archive


def _set_classify_method(saved_model_dir: Path) -> None:
    """TF-Serving's Classify API requires the signature's method name; ``tf.saved_model.save``
    writes every signature as ``predict``, so the classify one is corrected in the proto."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = saved_model_dir / "saved_model.pb"
    proto = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    for meta_graph in proto.meta_graphs:
        if "classify" in meta_graph.signature_def:
            meta_graph.signature_def["classify"].method_name = CLASSIFY_METHOD
    pb.write_bytes(proto.SerializeToString())


def _sample_jpeg() -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    pixels = (np.indices((64, 64)).sum(axis=0) * 2 % 256).astype("uint8")
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(buf, format="JPEG")
    return buf.getvalue()


def _write_warmup(saved_model_dir: Path, name: str) -> None:
    """``assets.extra/tf_serving_warmup_requests``: one ``serving_default`` request that both
    ``tensorflow_model_server`` and ``inception serve`` replay before marking a version
    AVAILABLE, so the first client does not pay for graph initialisation."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([_sample_jpeg()], dtype=tf.string))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )
    (saved_model_dir / "assets.extra").mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(saved_model_dir / WARMUP_FILE)) as writer:
        writer.write(log.SerializeToString())


def version_dir(out: str | os.PathLike, name: str, version: int) -> Path:
    """``out/name/version``, validating the name and version as TF-Serving reads them."""
    if not name or os.sep in name or name.startswith(".") or "/" in name:
        raise ValueError(f"invalid model name {name!r}: use a plain name such as 'inception'.")
    if int(version) < 1:
        raise ValueError(f"invalid version {version!r}: versions are positive integers.")
    return Path(out) / name / str(int(version))


def export_saved_model(
    members: list[Member],
    out: str | os.PathLike,
    name: str,
    version: int,
    class_names: list[str],
    *,
    top_k: int = 5,
    crop_fraction: float = 0.875,
    max_image_pixels: int | None = None,
    overwrite: bool = False,
    warmup: bool = True,
) -> Path:
    """Writes ``out/name/version/`` (a SavedModel) and returns its path.

    The SavedModel is written next to the target under a dot-name (which TF-Serving and
    ``inception serve`` ignore) and renamed into place, so a polling server never sees a
    half-written version.
    """
    target = version_dir(out, name, version)
    if target.exists() and not overwrite:
        raise ValueError(
            f"{target} already exists; choose another --version or pass --overwrite to replace it."
        )
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"crop fraction must be in (0, 1], got {crop_fraction}.")
    if top_k < 1:
        raise ValueError(f"top-k must be at least 1, got {top_k}.")
    archive = build_archive(
        members,
        class_names,
        top_k=top_k,
        crop_fraction=crop_fraction,
        max_image_pixels=max_image_pixels,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        archive.write_out(str(staging / "model"), verbose=False)
        built = staging / "model"
        _set_classify_method(built)
        if warmup:
            _write_warmup(built, name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(built, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------------------- CLI


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _per_member(values: list[str], count: int, flag: str) -> list[str | None]:
    if not values:
        return [None] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ValueError(
            f"{flag} has {len(values)} values for {count} models; give one or one each."
        )
    return values


def load_members(models, weights=None, image_sizes=None, classes=None, variant=None):
    """``--model`` entries (registered names or ``.keras`` files) -> ``Member`` list."""
    import inception

    members = []
    weights = _per_member(weights or [], len(models), "--weights")
    sizes = _per_member([str(s) for s in image_sizes or []], len(models), "--image-size")
    for entry, w, s in zip(models, weights, sizes, strict=True):
        if entry.endswith(".keras"):
            if not os.path.isfile(entry):
                raise FileNotFoundError(f"no such Keras model file: {entry}")
            import keras

            model = keras.saving.load_model(entry, compile=False)
            size = int(s) if s else int(model.inputs[0].shape[1])
            members.append(Member(model, size))
            continue
        config = inception.get_model_config(entry)
        size = int(s) if s else config.input_size
        if size < config.min_input_size:
            raise ValueError(
                f"--image-size {size} is below {entry}'s minimum of {config.min_input_size}."
            )
        w = None if w is None or w.lower() == "none" else w
        kwargs = {"input_shape": (size, size, 3), "weights": w}
        if classes:
            kwargs["classes"] = int(classes)
        if variant:
            kwargs["variant"] = variant
        members.append(Member(inception.build(entry, **kwargs), size))
    return members


def resolve_class_names(num_classes: int, labels: str | None) -> list[str]:
    """ImageNet names for 1000/1001 classes, else one name per line of ``labels``."""
    if labels:
        if not os.path.isfile(labels):
            raise FileNotFoundError(f"no such labels file: {labels}")
        names = [line.strip() for line in Path(labels).read_text().splitlines() if line.strip()]
        if len(names) != num_classes:
            raise ValueError(
                f"{labels} has {len(names)} names but the model predicts {num_classes} classes."
            )
        return names
    if num_classes in (1000, 1001):
        import inception

        return inception.class_names(num_classes)
    raise ValueError(
        f"the model predicts {num_classes} classes: pass --labels FILE with one class name per "
        "line (ImageNet names are built in for 1000 and 1001 classes)."
    )


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="inception export",
        description="Export a model (or an ensemble) as a SavedModel for TensorFlow Serving.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="registered name(s) or .keras file(s), comma-separated for an ensemble",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="'none' (random init), a .weights.h5 path or a weights name; one, or one "
        "per model (comma-separated)",
    )
    p.add_argument("--name", required=True, help="model name (the folder under --out)")
    p.add_argument("--version", required=True, type=int, help="version number (positive)")
    p.add_argument("--out", required=True, help="model base directory")
    p.add_argument(
        "--image-size", default=None, help="input size(s), default each model's own (299)"
    )
    p.add_argument("--classes", type=int, default=None, help="number of classes to build with")
    p.add_argument("--variant", default=None, help="architecture variant (slim or paper)")
    p.add_argument("--labels", default=None, help="class names file, one per line")
    p.add_argument("--top-k", type=int, default=5, help="classes returned per image (5)")
    p.add_argument(
        "--crop-fraction",
        type=float,
        default=None,
        help="central crop before resizing (default: the model config's, 0.875)",
    )
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=None,
        help="refuse images whose header declares more pixels (64e6)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.add_argument("--no-warmup", action="store_true", help="do not write a warmup request")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    models = _split(args.model)
    if not models:
        raise ValueError("--model is empty: pass a model name such as inception_v4.")
    target = version_dir(args.out, args.name, args.version)
    if target.exists() and not args.overwrite:
        raise ValueError(
            f"{target} already exists; choose another --version or pass --overwrite to replace it."
        )
    import inception

    # Check every argument before building anything (building takes a while).
    configs = [None if m.endswith(".keras") else inception.get_model_config(m) for m in models]
    sizes = _per_member(_split(args.image_size), len(models), "--image-size")
    _per_member(_split(args.weights), len(models), "--weights")
    for m, config, size in zip(models, configs, sizes, strict=True):
        if config and size and int(size) < config.min_input_size:
            raise ValueError(
                f"--image-size {size} is below {m}'s minimum of {config.min_input_size}."
            )
    names = None
    if None not in configs:
        names = resolve_class_names(
            min(args.classes or c.num_classes for c in configs), args.labels
        )
    members = load_members(
        models, _split(args.weights), _split(args.image_size), args.classes, args.variant
    )
    if names is None or len(names) != min(num_outputs(m.model) for m in members):
        names = resolve_class_names(min(num_outputs(m.model) for m in members), args.labels)
    crop = args.crop_fraction
    if crop is None:
        crop = next(
            (
                inception.get_model_config(m).preprocessing.crop_fraction
                for m in models
                if not m.endswith(".keras")
            ),
            0.875,
        )
    path = export_saved_model(
        members,
        args.out,
        args.name,
        args.version,
        names,
        top_k=args.top_k,
        crop_fraction=crop,
        max_image_pixels=args.max_image_pixels,
        overwrite=args.overwrite,
        warmup=not args.no_warmup,
    )
    print(
        f"exported {','.join(models)} to {path} (signatures: serving_default, predict_pixels, "
        "classify)"
    )
    return 0
