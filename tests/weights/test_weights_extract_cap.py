"""Checkpoint archives: extraction is capped in size (``sources.MAX_EXTRACT_BYTES``), checked
from the tar headers before anything is written; the TF-slim archives are fetched over https.
Archives are generated here as local files (never the internet)."""

import io
import json
import tarfile
from pathlib import Path

import pytest

from inception.weights import sources
from inception.weights.sources import WeightsError


def tar_with(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_archive_over_the_extraction_cap_is_refused_before_writing(tmp_path, monkeypatch):
    archive = tar_with(
        tmp_path / "big.tar.gz",
        {"m/model.ckpt.data-00000-of-00001": bytes(4096), "m/model.ckpt.index": bytes(100)},
    )
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(sources, "MAX_EXTRACT_BYTES", 4000)
    with pytest.raises(WeightsError) as err:
        sources._extract_checkpoint(str(archive), str(out))
    message = str(err.value)
    assert "4196 bytes" in message and "cap of 4000" in message
    assert "MAX_EXTRACT_BYTES" in message and "pass the checkpoint prefix" in message
    assert not list(out.rglob("*"))  # nothing was written
    monkeypatch.setattr(sources, "MAX_EXTRACT_BYTES", 5000)
    sources._extract_checkpoint(str(archive), str(out))
    assert (out / "m" / "model.ckpt.index").stat().st_size == 100


def test_the_cap_leaves_room_for_the_largest_slim_checkpoint():
    assert sources.MAX_EXTRACT_BYTES >= 2 * 1024**3


def test_slim_archives_are_fetched_over_https():
    manifest = json.loads((Path(sources.__file__).parent / "manifest.json").read_text())
    urls = [e["url"] for e in manifest["entries"].values()]
    assert urls and all(u.startswith("https://") for u in urls), urls
