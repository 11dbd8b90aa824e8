"""Data: sources of labelled images (``sources``) and the tf.data input pipeline (``pipeline``;
its preprocessing is ``inception.preprocessing.augment``)."""

from .sources import Source, imagenet_manual_dir, load_source

__all__ = ["Source", "load_source", "imagenet_manual_dir"]
