"""Model versions on disk: discovery, loading (``tf.saved_model.load`` of the exported artifact;
no model-building code), warmup, version policy and labels, as TensorFlow Serving's file-system
source does.

``BASE/NAME/<integer>/saved_model.pb`` is one version. Folders with other names (such as the
``.tmp-*`` staging folders of ``inception export``) are ignored. A version that fails to load is
reported (state END with the error) and the versions already loaded keep serving; it is tried
again when its ``saved_model.pb`` changes. A model with no version to serve says why (a warning,
``ServedModel.problem``): no numbered folders, a base path that is itself a SavedModel, or every
version failed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .codec import TensorInfo
from .errors import invalid, not_found

log = logging.getLogger("inception.serving")

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 100
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def saved_model_file(folder) -> str:
    """The SavedModel file that ``folder`` holds (``saved_model.pb`` or ``.pbtxt``), or ''."""
    for name in SAVED_MODEL_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            return name
    return ""


def saved_model_base_error(base, what: str) -> str:
    """Why ``base`` is no model base path when it is a SavedModel itself (a version folder such
    as ``DIR/NAME/1``), naming the parent to use instead; '' otherwise. ``what`` says where
    the path was given (``--model-base-path``, a config file's ``base_path``)."""
    found = saved_model_file(base)
    if not found:
        return ""
    base = str(base)
    parent = os.path.dirname(os.path.normpath(base)) or os.path.dirname(os.path.abspath(base))
    return (
        f"{what} {base} is a SavedModel (it holds {found}), not a model base path: use its "
        f"parent {parent}, whose numbered sub-folders (1, 2, ...) are the versions."
    )


@dataclass
class Signature:
    """A loaded signature: what TF-Serving's metadata reports and the function to call."""

    name: str
    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    proto: object  # tensorflow.SignatureDef
    fn: object

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        tensors = {
            k: tf.constant(v, dtype=tf.string if v.dtype == object else None)
            for k, v in inputs.items()
        }
        return {k: v.numpy() for k, v in self.fn(**tensors).items()}


def _tensor_info(key, proto) -> TensorInfo:
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(proto.dtype)
    np_dtype = np.dtype(object) if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
    shape = (
        None
        if proto.tensor_shape.unknown_rank
        else tuple(None if d.size < 0 else int(d.size) for d in proto.tensor_shape.dim)
    )
    return TensorInfo(key, np_dtype, shape)


@dataclass
class Version:
    """One version directory and its state: LOADING, AVAILABLE, UNLOADING or END."""

    number: int
    path: Path
    model: str = ""
    state: str = "LOADING"
    error: str = ""
    stamp: float = 0.0  # mtime of saved_model.pb when (re)tried
    signatures: dict[str, Signature] = field(default_factory=dict)
    batchers: dict[str, object] = field(default_factory=dict)
    loaded: object = None

    def load(self) -> None:
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.loaded = tf.saved_model.load(str(self.path))
        proto = saved_model_pb2.SavedModel.FromString((self.path / "saved_model.pb").read_bytes())
        defs = proto.meta_graphs[0].signature_def
        for name, fn in self.loaded.signatures.items():
            sd = defs[name]
            self.signatures[name] = Signature(
                name,
                sd.method_name,
                {k: _tensor_info(k, v) for k, v in sd.inputs.items()},
                {k: _tensor_info(k, v) for k, v in sd.outputs.items()},
                sd,
                fn,
            )
        if not self.signatures:
            raise ValueError(f"{self.path} has no signatures to serve")
        self._warmup()

    def _warmup(self) -> None:
        """Replays ``assets.extra/tf_serving_warmup_requests`` (PredictionLog records)."""
        path = self.path / WARMUP_FILE
        if not path.is_file():
            return
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        for i, record in enumerate(tf.data.TFRecordDataset(str(path))):
            if i >= MAX_WARMUP_RECORDS:
                break
            entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if entry.WhichOneof("log_type") != "predict_log":
                continue
            request = entry.predict_log.request
            sig = self.signatures.get(request.model_spec.signature_name or "serving_default")
            if sig is not None:
                sig.run({k: tf.make_ndarray(v) for k, v in request.inputs.items()})


@dataclass
class ModelSpec:
    """A served model: TF-Serving's ``ModelConfig`` (name, base path, version policy, labels)."""

    name: str
    base_path: str
    policy: str = "all"  # "all", "latest" or "specific"
    num_versions: int = 1  # for "latest"
    versions: tuple[int, ...] = ()  # for "specific"
    labels: dict[str, int] = field(default_factory=dict)


def parse_model_config(text: str, relative_to: str = ".") -> list[ModelSpec]:
    """Reads TF-Serving's ``--model_config_file`` text proto (``model_config_list``)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ValueError(f"invalid model config file: {exc}") from None
    specs = []
    for mc in config.model_config_list.config:
        if mc.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {mc.name!r}: only model_platform 'tensorflow' is served.")
        policy = mc.model_version_policy.WhichOneof("policy_choice") or "latest"
        base = mc.base_path
        if not os.path.isabs(base):
            base = os.path.join(relative_to, base)
        specs.append(
            ModelSpec(
                mc.name,
                base,
                policy,
                num_versions=mc.model_version_policy.latest.num_versions or 1,
                versions=tuple(mc.model_version_policy.specific.versions),
                labels=dict(mc.version_labels),
            )
        )
    if not specs:
        raise ValueError(
            "the model config file lists no models (model_config_list { config ... })."
        )
    return specs


class ServedModel:
    """The versions of one model, refreshed from disk by ``refresh()`` (a loader thread)."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.name = spec.name
        self.base = Path(spec.base_path)
        self.versions: dict[int, Version] = {}
        self.problem = ""  # why no version can be served, after a scan that found none
        self._lock = threading.Lock()

    def on_disk(self) -> dict[int, Path]:
        found = {}
        if self.base.is_dir():
            for entry in self.base.iterdir():
                if entry.name.isdigit() and entry.is_dir() and int(entry.name) > 0:
                    found[int(entry.name)] = entry
        return found

    def wanted(self, found: dict[int, Path]) -> dict[int, Path]:
        numbers = sorted(found)
        if self.spec.policy == "latest":
            numbers = numbers[-self.spec.num_versions :]
        elif self.spec.policy == "specific":
            numbers = [n for n in numbers if n in self.spec.versions]
        return {n: found[n] for n in numbers}

    def scan_problem(self, found: dict[int, Path], wanted: dict[int, Path]) -> str:
        """Why a scan (``found`` on disk, ``wanted`` by the policy) gives no version, or ''."""
        if wanted:
            return ""
        if not self.base.is_dir():
            return f"the model base path {self.base} does not exist or is not a folder"
        error = saved_model_base_error(self.base, "the model base path")
        if error:
            return error
        if not found:
            names = sorted(entry.name for entry in self.base.iterdir())
            held = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            return f"no numeric version folders (1, 2, ...) under {self.base} " + (
                f"(it holds {held})" if names else "(it is empty)"
            )
        return (
            f"the version policy asks for versions {list(self.spec.versions)}; {self.base} has "
            f"{sorted(found)}"
        )

    def refresh(self) -> list[Version]:
        """Loads new versions, retries changed broken ones, and returns the versions that
        left disk (or the policy), now UNLOADING, for the caller to drain."""
        found = self.on_disk()
        wanted = self.wanted(found)
        for number, path in sorted(wanted.items()):
            pb = path / "saved_model.pb"
            stamp = pb.stat().st_mtime if pb.is_file() else -1.0
            current = self.versions.get(number)
            if current is not None and (current.state == "AVAILABLE" or current.stamp == stamp):
                continue
            version = Version(number, path, self.name, stamp=stamp)
            with self._lock:
                if current is None:
                    self.versions[number] = version
            started = time.monotonic()
            try:
                if stamp < 0:
                    raise FileNotFoundError(f"version folder {path} has no saved_model.pb")
                version.load()
            except Exception as exc:  # a broken version must not stop serving
                version.state, version.error = "END", f"{type(exc).__name__}: {exc}"[:2000]
                log.error(
                    "model %s version %d failed to load: %s", self.name, number, version.error
                )
            else:
                version.state = "AVAILABLE"
                log.info(
                    "model %s version %d available (%.1f s)",
                    self.name,
                    number,
                    time.monotonic() - started,
                )
            with self._lock:
                self.versions[number] = version
        gone = []
        with self._lock:
            for number in list(self.versions):
                if number not in wanted:
                    version = self.versions.pop(number)
                    if version.state == "AVAILABLE":
                        version.state = "UNLOADING"
                        gone.append(version)
        self._note_problem(found, wanted)
        return gone

    def _note_problem(self, found: dict[int, Path], wanted: dict[int, Path]) -> None:
        """Sets ``problem`` (why nothing can be served) and logs it when it changes."""
        problem = self.scan_problem(found, wanted)
        if not problem and not self.available():
            version = self.versions.get(max(wanted))
            if version is not None and version.state == "END":
                problem = f"every version failed to load (version {version.number}: "
                problem += f"{version.error})"
        if problem and problem != self.problem:
            log.warning("model %s has no version to serve: %s", self.name, problem)
        self.problem = problem

    def available(self) -> list[int]:
        return sorted(n for n, v in self.versions.items() if v.state == "AVAILABLE")

    def resolve(self, version: int | None = None, label: str | None = None) -> Version:
        """The version a request names (a number, a label, or the latest available)."""
        if label is not None:
            if label not in self.spec.labels:
                raise invalid(
                    f"unrecognized version label {label!r} for model {self.name!r}; "
                    f"known labels: {sorted(self.spec.labels) or 'none'}."
                )
            version = self.spec.labels[label]
        if version is None:
            numbers = self.available()
            if not numbers:
                why = f" ({self.problem})" if self.problem else ""
                raise not_found(
                    f"Servable not found for request: Latest({self.name}): no version is "
                    f"available{why}."
                )
            return self.versions[numbers[-1]]
        found = self.versions.get(int(version))
        if found is None or found.state != "AVAILABLE":
            raise not_found(
                f"Servable not found for request: Specific({self.name}, {version}); available "
                f"versions: {self.available() or 'none'}."
            )
        return found
