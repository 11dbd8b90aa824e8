"""``inception export``: SavedModels in the layout ``tensorflow_model_server`` loads.

``DIR/MODEL/VERSION/`` holds one SavedModel with three signatures (see ``serve/README.md``):

* ``serving_default``: ``images`` (string ``[batch]``: encoded JPEG/PNG/GIF/BMP of any size) ->
  ``classes`` (string ``[batch, k]``), ``class_ids`` (int64 ``[batch, k]``), ``scores`` (float
  ``[batch, k]``) and ``probabilities`` (float ``[batch, num_classes]``);
* ``predict_pixels``: ``pixels`` (float ``[batch, size, size, 3]``, RGB in [0, 255], already
  cropped) -> the same outputs;
* ``classify``: the Classify API (method ``tensorflow/serving/classify``): ``inputs`` (serialized
  ``tf.Example`` with an ``image/encoded`` bytes feature) -> ``classes``, ``scores``.

Each model is prepared as its ``inception.ModelInfo`` says (input size, crop, interpolation,
scaling: the crops of ``inception eval``), so the export answers as ``inception predict`` does.
Several models make one ensemble SavedModel whose probabilities are the (weighted) mean of the
members' over their common classes. Class names come with the models; ``--labels`` names them
otherwise. Each weight is stored once.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .limits import (
    CLASSIFY_METHOD,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_JPEG_SCANS,
    jpeg_scans_error,
)
from .repository import WARMUP_FILE


def say(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"inception export: {message}", file=sys.stderr, flush=True)


def class_names_for(members, labels: str | None = None) -> tuple[list, list[str]]:
    """``(common classes or None, the names the export returns)``: the models' own names
    (ImageNet synsets as their first lemma), or those of the labels file ``labels``
    (``inception.models.labels.read_labels_file``)."""
    from inception.evaluation.runner import common_classes
    from inception.models.ensemble import member_num_classes
    from inception.models.labels import read_labels_file
    from inception.preprocessing import display_name

    space = common_classes(members)
    size = len(space) if space else min(
        member_num_classes(m.model) - m.info.label_offset for m in members
    )  # fmt: skip
    if labels:
        names = read_labels_file(labels)
        if len(names) != size:
            raise ValueError(
                f"{labels} has {len(names)} names but the model predicts {size} classes; "
                "give one name per line, in output order."
            )
        return space, names
    if space is None:
        raise ValueError(
            f"the model's class names are unknown (it predicts {size} classes): pass --class-names "
            "FILE with one name per line (models trained or converted by inception carry them)."
        )
    return space, [display_name(c) for c in space]


def build_archive(
    members,
    class_names: list[str],
    *,
    space=None,
    weights=None,
    top_k: int = 5,
    max_image_pixels: int | None = None,
    max_jpeg_scans: int | None = None,
):
    """A ``keras.export.ExportArchive`` with the three serving signatures over ``members``
    (``inception.app.resolve.Member`` objects)."""
    import keras
    import tensorflow as tf

    from inception.models import labels as lb
    from inception.models.combine import align_probabilities, mean_weights
    from inception.models.ensemble import member_num_classes, member_returns_logits
    from inception.preprocessing import crops as crop_lib
    from inception.preprocessing import rescale

    from . import graph

    max_image_pixels = max_image_pixels or DEFAULT_MAX_IMAGE_PIXELS
    max_jpeg_scans = max_jpeg_scans or DEFAULT_MAX_JPEG_SCANS
    size = len(class_names)
    columns = [
        lb.columns(m.info, member_num_classes(m.model), space, size, f"model {m.name}")
        for m in members
    ]
    logits = [member_returns_logits(m.model) for m in members]
    mean = mean_weights(weights, len(members))
    preps = [m.info.preprocessing for m in members]
    pixels_size = max(p.input_size for p in preps)
    top_k = min(top_k, size)
    names = tf.constant(class_names)

    def head(probabilities):
        scores, ids = tf.math.top_k(probabilities, k=top_k)
        return {
            "classes": tf.gather(names, ids),
            "class_ids": tf.cast(ids, tf.int64),
            "scores": scores,
            "probabilities": probabilities,
        }

    def run(i, x):  # one member on its own input (cropped, at its size) -> its main output
        y = members[i].model(rescale(x, preps[i].scale), training=False)
        return y[0] if isinstance(y, (list, tuple)) else y

    def combine(outs):
        return align_probabilities(outs, columns, logits, mean)

    def from_pixels(pixels):  # RGB [0, 255] at pixels_size, already cropped
        outs = []
        for i, p in enumerate(preps):
            x = pixels
            if p.input_size != pixels_size:
                x = tf.image.resize(x, [p.input_size] * 2, method=p.interpolation, antialias=True)
            outs.append(run(i, x))
        return combine(outs)

    groups = list(dict.fromkeys(preps))

    def from_encoded(images):
        def one(contents):
            image = graph.decode(contents, max_image_pixels, max_jpeg_scans)
            return tuple(crop_lib.extract_crops(image, 1, g.input_size, g.crop_fraction, g.crop,
                                                g.interpolation)[0] for g in groups)  # fmt: skip

        spec = tuple(tf.TensorSpec([g.input_size, g.input_size, 3]) for g in groups)
        cropped = tf.map_fn(one, images, fn_output_signature=spec)
        return combine([run(i, cropped[groups.index(p)]) for i, p in enumerate(preps)])

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

    # Not ``archive.track(model)``: the endpoints' own variables are saved, each weight once
    # (tracking the model as well stores every weight a second time).
    archive = keras.export.ExportArchive()
    string_batch = [tf.TensorSpec([None], tf.string, name="images")]
    archive.add_endpoint("serving_default", serving_default, string_batch)
    archive.add_endpoint(
        "predict_pixels",
        predict_pixels,
        [tf.TensorSpec([None, pixels_size, pixels_size, 3], tf.float32)],
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
    models,
    out: str | os.PathLike,
    name: str,
    version: int,
    class_names: list[str] | None = None,
    *,
    weights=None,
    top_k: int = 5,
    crop_fraction: float | None = None,
    max_image_pixels: int | None = None,
    max_jpeg_scans: int | None = None,
    overwrite: bool = False,
    warmup: bool = True,
    quiet: bool = True,
    precision: str | None = None,
) -> Path:
    """Writes ``out/name/version/`` (a SavedModel) and returns its path.

    ``models``: Keras models or resolved members (several: an ensemble, ``weights`` its mean
    weights). ``class_names``: the returned names (default: the models' own). ``crop_fraction``
    overrides each model's. ``precision``: run the graph through
    ``inception.optimize_for_inference`` (``"auto"``, ``"bfloat16"``, ...; the signatures stay
    float32 and string); ``None`` exports the models as they are. The SavedModel is written
    next to the target under a dot-name (which TF-Serving and ``inception serve`` ignore) and
    renamed into place, so a polling server never sees a half-written version.
    """
    from inception.app.resolve import Member
    from inception.evaluation.runner import common_classes
    from inception.models.info import model_info, set_model_info

    target = version_dir(out, name, version)
    if target.exists() and not overwrite:
        raise ValueError(
            f"{target} already exists; choose another --version or pass --overwrite to replace it."
        )
    if crop_fraction is not None and not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"--crop-fraction must be in (0, 1]; got {crop_fraction}.")
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1; got {top_k}.")
    if max_jpeg_scans is not None and (error := jpeg_scans_error(max_jpeg_scans)):
        raise ValueError(error)
    members = [m if isinstance(m, Member) else Member(m.name, m, "given model") for m in models]
    if not members:
        raise ValueError("nothing to export: pass at least one model.")
    if crop_fraction is not None:
        for m in members:
            info = model_info(m.model)
            set_model_info(m.model, info.replace(
                preprocessing=info.preprocessing.replace(crop_fraction=crop_fraction)))  # fmt: skip
    if precision is not None:
        from inception.app.resolve import optimize

        say(f"optimizing for inference: {optimize(members, precision)}", quiet)
    if class_names is None:
        space, names = class_names_for(members)
    else:
        space, names = common_classes(members), list(class_names)
        if space is not None and len(space) != len(names):
            raise ValueError(
                f"{len(names)} class names for a model of {len(space)} classes; give one each."
            )
    say("tracing the serving signatures", quiet)
    archive = build_archive(
        members, names, space=space, weights=weights, top_k=top_k,
        max_image_pixels=max_image_pixels, max_jpeg_scans=max_jpeg_scans,
    )  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        say(f"writing {target}", quiet)
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
