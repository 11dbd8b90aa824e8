"""The repository speaks of the project only, and its packaging says what it is: a LICENSE beside
the SPDX licence expression, and a setuptools that reads that form without deprecation notices."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
# Words of a development workplace, not of the project: links outside the repository, the
# remote-execution tool's output folder and its options.
FOREIGN = re.compile(r"\.\./shared/|\$OUT\b|\bcarry\b.*\btimeout_s\b|\bsession that\b")


def tracked_text_files():
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, names):
        path = ROOT / name.decode()
        if path.suffix in (".md", ".py", ".toml", ".txt", ".json", "") and path.is_file():
            yield path


def test_no_text_points_outside_the_repository():
    offending = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FOREIGN.search(line):
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not offending, "\n".join(offending)


def test_license_file_and_spdx_expression():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    # the SPDX string form needs setuptools >= 77 (older ones print deprecation boxes or fail)
    (requirement,) = project["build-system"]["requires"]
    assert re.fullmatch(r"setuptools>=(\d+)", requirement)
    assert int(requirement.split(">=")[1]) >= 77
