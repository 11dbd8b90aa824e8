"""Pretrained weights: the manifest of published checkpoints, verified downloads, converters from
TF-slim, timm and Keras checkpoints, and loading a ``weights=`` argument into a built model.

``weights`` may be ``"imagenet"`` (the model's default manifest entry), a manifest name such as
``"timm:inception_v4.tf_in1k"``, the path of a converted ``.weights.h5`` / ``.keras`` file, or the
path of a supported source checkpoint (TF-slim prefix/folder/.tar.gz, timm .safetensors, Keras
h5), converted on the fly. Manifest entries are downloaded once into ``$INCEPTION_HOME`` (default
``~/.keras/inception``), verified, converted, and the converted ``.weights.h5`` is cached there.

Names load on first use, so ``inception convert --help`` does not wait for Keras.
"""

from .._imports import lazy_attributes

_WHERE = {
    "load_weights": "loading", "cache_path": "loading", "fit_problem": "loading",
    "convert_into": "convert", "Report": "convert",
    "Entry": "manifest", "entries": "manifest", "get_entry": "manifest", "resolve": "manifest",
    "fetch": "download", "inception_home": "download", "DownloadError": "download",
    "WeightsError": "sources",
}  # fmt: skip
__all__ = list(_WHERE)


__getattr__ = lazy_attributes(__name__, _WHERE)
