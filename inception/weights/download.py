"""Verified downloads into ``$INCEPTION_HOME`` (default ``~/.keras/inception``).

``keras.utils.get_file`` does the HTTP transfer and the hash check. It downloads into a fresh
staging folder; only a complete, verified file is moved (atomically) to
``$INCEPTION_HOME/downloads/``, so an interrupted, truncated or corrupt transfer never leaves a
file that a later run would trust. Entries without a published hash record the sha256 seen at the
first download in ``<file>.sha256`` and are checked against it afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

from .manifest import Entry
from .sources import WeightsError


class DownloadError(WeightsError):
    """A download failed or did not verify; nothing was cached."""


def inception_home() -> Path:
    return Path(os.environ.get("INCEPTION_HOME") or Path("~/.keras/inception").expanduser())


def downloads_dir() -> Path:
    return inception_home() / "downloads"


def converted_dir() -> Path:
    return inception_home() / "converted"


def file_digest(path, algorithm="sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected(entry: Entry, target: Path) -> tuple[str, str] | None:
    if entry.hash:
        return entry.hash_algorithm, entry.hash_value
    recorded = Path(f"{target}.sha256")
    if recorded.is_file():
        return "sha256", recorded.read_text().split()[0]
    return None


def fetch(entry: Entry) -> Path:
    """Returns the verified local copy of ``entry``'s file, downloading it if needed."""
    target = downloads_dir() / entry.file
    expected = _expected(entry, target)
    if target.is_file():
        if expected is None:  # placed by hand: trusted on first use, and recorded from now on
            Path(f"{target}.sha256").write_text(f"{file_digest(target)}  {entry.file}\n")
            return target
        if file_digest(target, expected[0]) == expected[1]:
            return target
        raise DownloadError(
            f"{target} does not match the {expected[0]} {expected[1]} of {entry.name}; it is "
            f"corrupt or a different file. Delete it to download {entry.url} again."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        path = _get_file(entry, staging, expected)
        if expected is None:
            Path(f"{target}.sha256").write_text(f"{file_digest(path)}  {entry.file}\n")
        os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _get_file(entry: Entry, staging: Path, expected) -> Path:
    import keras

    manual = (
        f"Expected file: {entry.file}"
        + (f" ({expected[0]} {expected[1]})" if expected else "")
        + f". To install it by hand, download {entry.url} and put it at "
        f"{downloads_dir() / entry.file} (or set INCEPTION_HOME), or pass the local path "
        "(--weights PATH, weights=PATH)."
    )
    # Keras' live bar on a terminal; in a log, one line before and one after instead
    to_log = not sys.stdout.isatty() and keras.utils.is_interactive_logging_enabled()
    if to_log:
        keras.utils.disable_interactive_logging()
        print(f"downloading {entry.url}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        path = keras.utils.get_file(
            fname=entry.file,
            origin=entry.url,
            file_hash=expected[1] if expected else None,
            hash_algorithm=expected[0] if expected else "auto",
            cache_dir=str(staging),
            cache_subdir="",
        )
        if to_log:
            size = _size(Path(path)) / 1e6
            seconds = time.perf_counter() - start
            print(f"downloaded {entry.file}: {size:.0f} MB in {seconds:.0f} s", file=sys.stderr)
    except ValueError as exc:  # get_file's hash check
        size = _size(staging / entry.file)
        raise DownloadError(
            f"download of {entry.name} from {entry.url} failed verification ({exc}; received "
            f"{size} bytes): the file is corrupt, truncated or was replaced; nothing was cached. "
            + manual
        ) from None
    except Exception as exc:  # get_file wraps urllib errors in a bare Exception
        cause = exc.__context__ or exc
        if isinstance(cause, urllib.error.ContentTooShortError):
            what = f"the transfer was truncated ({cause.reason})"
        elif isinstance(cause, urllib.error.HTTPError):
            what = f"the server answered HTTP {cause.code} {cause.reason}"
        elif isinstance(cause, urllib.error.URLError):
            what = f"the server could not be reached ({cause.reason}; is this machine offline?)"
        else:
            what = str(exc)
        raise DownloadError(
            f"could not download {entry.name} from {entry.url}: {what}. Nothing was cached. "
            + manual
        ) from None
    finally:
        if to_log:
            keras.utils.enable_interactive_logging()
    return Path(path)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
