"""The weights manifest: one entry per published checkpoint, stored as data in
``weights/manifest.json`` (source URL, archive member, published hash, license, classes, label
offset, preprocessing, reported accuracy).

The file is looked up at ``$INCEPTION_MANIFEST``, then beside this module (installed wheels),
then in the repository's top-level ``weights/`` folder.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..models.registry import get_model_config
from ..preprocessing import Preprocessing
from .sources import WeightsError

DEFAULT_WEIGHTS = "imagenet"  # names each model's default entry ("defaults" in the manifest)
NO_WEIGHTS = ("none", "None", "random", "")  # weights= values for random initialisation


@dataclass(frozen=True)
class Entry:
    name: str  # "slim:inception_v4_2016_09_09"
    model: str
    format: str  # slim | timm | keras
    url: str
    file: str
    member: str | None
    hash: str | None  # "md5:..." or "sha256:..." as published; None if none is published
    license: str
    num_classes: int
    label_offset: int
    aux_logits: bool = False
    include_top: bool = True
    top1: float | None = None
    top5: float | None = None
    preprocessing: dict = field(default_factory=dict, compare=False)
    homepage: str = ""
    license_url: str = ""
    hash_note: str = ""

    @property
    def hash_algorithm(self) -> str | None:
        return self.hash.split(":", 1)[0] if self.hash else None

    @property
    def hash_value(self) -> str | None:
        return self.hash.split(":", 1)[1] if self.hash else None


def manifest_path() -> Path:
    env = os.environ.get("INCEPTION_MANIFEST")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here / "manifest.json", here.parents[1] / "weights" / "manifest.json"):
        if candidate.is_file():
            return candidate
    raise WeightsError(
        "the weights manifest (weights/manifest.json) was not found; set INCEPTION_MANIFEST to "
        "its path."
    )


@functools.cache
def _load(path: str, mtime: float) -> dict:
    with open(path) as f:
        data = json.load(f)
    fields = set(Entry.__dataclass_fields__)
    entries = {}
    for name, raw in data["entries"].items():
        unknown = set(raw) - fields
        if unknown:
            raise WeightsError(f"{path}: entry {name!r} has unknown fields {sorted(unknown)}.")
        entries[name] = Entry(name=name, **raw)
        try:
            Preprocessing.from_dict(raw.get("preprocessing"))
        except ValueError as exc:
            raise WeightsError(f"{path}: entry {name!r}: {exc}") from None
    return {"entries": entries, "defaults": data.get("defaults", {}),
            "no_checkpoint": data.get("no_checkpoint", {})}  # fmt: skip


def load_manifest() -> dict:
    path = manifest_path()
    return _load(str(path), path.stat().st_mtime)


def entries() -> dict[str, Entry]:
    return load_manifest()["entries"]


def get_entry(name: str) -> Entry:
    try:
        return entries()[name]
    except KeyError:
        raise WeightsError(
            f"unknown pretrained weights {name!r}; known: {', '.join(sorted(entries()))}."
        ) from None


def no_checkpoint_reason(model_name: str) -> str:
    """Why ``model_name`` has no default pretrained entry, in one sentence."""
    reason = load_manifest()["no_checkpoint"].get(model_name)
    return reason or f"no pretrained ImageNet weights are listed for {model_name}."


def resolve(model_name: str, weights: str) -> Entry:
    """``"imagenet"`` -> the model's default entry; a manifest name -> that entry."""
    if weights == DEFAULT_WEIGHTS:
        weights = load_manifest()["defaults"].get(model_name)
        if weights is None:
            raise WeightsError(no_checkpoint_reason(model_name))
    entry = get_entry(weights)
    if entry.model != model_name:
        raise WeightsError(
            f"weights {entry.name!r} are for {entry.model}, not {model_name}; entries for "
            f"{model_name}: {', '.join(n for n, e in entries().items() if e.model == model_name)}."
        )
    return entry


def preprocessing_for(model_name: str, fmt: str, name: str | None = None) -> Preprocessing:
    """The preprocessing of weights ``name`` (a manifest entry), else of the manifest's entries
    of the same model and format (a local copy of a timm checkpoint is prepared as timm's), else
    the model's default."""
    found = entries()
    if name in found:
        return Preprocessing.from_dict(found[name].preprocessing)
    same = [e for e in found.values() if (e.model, e.format) == (model_name, fmt)]
    if same:
        return Preprocessing.from_dict(same[0].preprocessing)
    return get_model_config(model_name).preprocessing
