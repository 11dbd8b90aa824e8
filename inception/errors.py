"""Errors shared by the whole package."""

import os


class UsageError(ValueError):
    """Bad input from the user: the command line prints it as one clear message, without a
    traceback."""


def check_image_folder(root) -> None:
    """The one refusal of a ``--data`` / ``data=`` path that is not a folder of class folders
    (used before TensorFlow loads and by the data loader)."""
    if not os.path.exists(root):
        raise UsageError(
            f"data {str(root)!r} is neither a folder nor a known data set; use a folder with "
            "one sub-folder per class, 'imagenet2012' or 'tfds:NAME'."
        )
    if not os.path.isdir(root):
        raise UsageError(
            f"data {str(root)!r} is a file; give a folder with one sub-folder per class."
        )
