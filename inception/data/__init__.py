"""Data: sources of labelled images (``sources``), Inception preprocessing
(``preprocessing``) and the tf.data input pipeline (``pipeline``)."""

from .sources import Source, imagenet_manual_dir, load_source

__all__ = ["Source", "load_source", "imagenet_manual_dir"]
