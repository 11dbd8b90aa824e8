"""``inception batch-predict`` on Apache Beam's local runner (issue 22): one row per file with the
top-1 of ``inception predict``, unreadable files as rows with an error, a killed run resumed
without a duplicate or a missing row, Parquet, list files, globs and tfds splits, and each bad
input refused in one sentence with nothing written or lost.

The model is a tiny ``.keras`` classifier whose answers are known (``helpers.colour_model``:
class j for a red level of 25 + 20 j). Most runs are in this process (the runner's in-memory
and multi-threaded modes); the restart test runs the command in a process group of its own with
two worker processes, and kills the group while one worker is stuck reading a named pipe."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, colour_model, wait_for
from PIL import Image

pytest.importorskip("apache_beam")  # the beam extra: `make install` installs it

import inception  # noqa: E402
from inception import cli  # noqa: E402

SIZE = 48
NAMES = [f"c{i}" for i in range(10)]
CORRUPT = {"broken.jpg": "not a readable image", "notes.txt": "not a readable image"}


def red_image(path: Path, label: int) -> Path:
    image = np.full((40, 56, 3), 90, np.uint8)
    image[..., 0] = 20 + 20 * label + 5
    Image.fromarray(image).save(path)
    return path


def write_folder(root: Path) -> Path:
    """Ten PNGs (``c0.png``: class 0, ...) in two sub-folders, two unreadable files and a hidden
    file (skipped, as ``inception predict`` skips it)."""
    for i in range(10):
        (root / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        red_image(root / f"part{i % 2}" / f"c{i}.png", i)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated JPEG")
    (root / "notes.txt").write_text("not an image\n")
    (root / ".hidden.png").write_bytes(b"skipped")
    return root


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    from inception.models.info import ModelInfo, save_model
    from inception.preprocessing import Preprocessing

    path = tmp_path_factory.mktemp("model") / "colour.keras"
    info = ModelInfo(class_names=NAMES, preprocessing=Preprocessing(input_size=SIZE))
    save_model(colour_model(SIZE), path, info)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("images"))


def run(*argv) -> tuple[int, str, str]:
    """``inception batch-predict ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["batch-predict", *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


def rows_of(out: Path) -> list[dict]:
    """Every row of the output's shards (JSON Lines or Parquet)."""
    rows = []
    for part in sorted(out.glob("part-*-of-*.*")):
        if part.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows += pq.read_table(part).to_pylist()
        else:
            rows += [json.loads(line) for line in part.read_text().splitlines()]
    return rows


def finished(out: Path) -> list[Path]:
    return sorted((out / "_finished").glob("part-*.json")) if (out / "_finished").is_dir() else []


def predicted(model_file, inputs) -> dict[str, dict]:
    """``inception predict`` (the Python API) on the same files: its rows by path."""
    return {r["input"]: r for r in inception.predict(str(model_file), inputs, top=3)}


def check_against_predict(rows, expected) -> None:
    """One row per file; each top-1 is predict's; the unreadable ones carry an error."""
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), "a row appears twice"
    assert set(paths) == set(expected), set(paths) ^ set(expected)
    for row in rows:
        want = expected[row["path"]]
        if "error" in want:
            assert row["error"] and not row["classes"], row
            continue
        assert row["error"] is None, row
        assert row["classes"][0] == want["predictions"][0]["class"], row
        assert row["probabilities"] == sorted(row["probabilities"], reverse=True)
        assert np.isclose(row["probabilities"][0], want["predictions"][0]["probability"])


# --- the restart: two worker processes, killed midway, rerun ----------------------------------


def test_killed_run_resumes_with_every_row_once_and_predicts_top1(model_file, tmp_path):
    """Two worker processes; one blocks reading a named pipe (a stalled file system), so the
    group is killed with shards finished and shards not; the rerun of the same command writes
    the rest: no row twice, none missing, each top-1 equal to ``inception predict``'s."""
    images = write_folder(tmp_path / "images")
    stuck = images / "part1" / "stuck.png"
    os.mkfifo(stuck)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "inception", "batch-predict", str(images),
               "--model", str(model_file), "--out", str(out), "--num-shards", "6",
               "--top-k", "3", "--direct-num-workers", "2",
               "--direct-running-mode", "multi_processing"]  # fmt: skip
    log = tmp_path / "first.log"
    with open(log, "w") as stream:
        first = subprocess.Popen(command, stdout=stream, stderr=stream, cwd=tmp_path,
                                 start_new_session=True)  # fmt: skip
        try:
            assert wait_for(lambda: finished(out) or first.poll() is not None, 240)
            assert first.poll() is None, log.read_text()[-3000:]  # stuck on the pipe
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the command and its workers
            first.wait(timeout=60)
    done = {p.name: (out / json.loads(p.read_text())["file"]).stat().st_mtime_ns
            for p in finished(out)}  # fmt: skip
    assert 1 <= len(done) < 6, log.read_text()[-3000:]
    stuck.unlink()
    red_image(stuck, 4)

    second = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{len(done)}/6 shards finished before" in second.stderr
    assert "13 rows (11 images, 2 unreadable) in 6 shards" in second.stdout
    assert "Beam counters: images" in second.stderr
    for marker, mtime in done.items():  # shards finished before the kill were not rewritten
        shard_file = out / json.loads((out / "_finished" / marker).read_text())["file"]
        assert shard_file.stat().st_mtime_ns == mtime
    rows = rows_of(out)
    expected = predicted(model_file, images)
    check_against_predict(rows, expected)
    by_path = {Path(r["path"]).name: r for r in rows}
    assert [by_path[f"c{i}.png"]["classes"][0] for i in range(10)] == NAMES
    assert by_path["stuck.png"]["classes"][0] == "c4"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finished"] == list(range(6))
    assert (manifest["rows"], manifest["errors"]) == (13, 2)
    assert not list((out / "_temporary").iterdir())


# --- in this process -----------------------------------------------------------------------


def test_threads_write_one_row_per_file_with_predicts_classes(model_file, folder, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run(folder, "--model", model_file, "--out", out, "--top-k", "3",
                               "--num-shards", "3", "--direct-num-workers", "2",
                               "--direct-running-mode", "multi_threading")  # fmt: skip
    assert code == 0, stderr
    assert "12 rows (10 images, 2 unreadable) in 3 shards" in stdout
    assert "images/s" in stdout
    assert "Beam counters: images 10, errors 2, shards 3" in stderr
    rows = rows_of(out)
    check_against_predict(rows, predicted(model_file, folder))
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert errors == CORRUPT
    assert all(len(r["classes"]) == 3 for r in rows if not r["error"])
    assert sorted(p.name for p in out.iterdir()) == [
        "_finished", "_temporary", "manifest.json",
        *(f"part-0000{i}-of-00003.jsonl" for i in range(3)),
    ]  # fmt: skip


def test_parquet_output_has_the_same_rows(model_file, folder, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    code, _, stderr = run(folder, "--model", model_file, "--out", out, "--top-k", "3",
                          "--num-shards", "2", "--output-format", "parquet")  # fmt: skip
    assert code == 0, stderr
    assert pq.read_schema(out / "part-00000-of-00002.parquet").names == [
        "path", "classes", "labels", "probabilities", "error"
    ]  # fmt: skip
    check_against_predict(rows_of(out), predicted(model_file, folder))


def test_rerun_resumes_and_another_run_is_refused_unless_overwrite(model_file, folder, tmp_path):
    out = tmp_path / "out"
    argv = [folder, "--model", model_file, "--out", out, "--num-shards", "2"]
    assert run(*argv)[0] == 0
    written = {p.name: p.read_bytes() for p in out.glob("part-*")}
    code, stdout, stderr = run(*argv)  # the same command again: nothing to do
    assert code == 0 and "all 2 shards were finished before" in stderr
    assert "12 rows (10 images, 2 unreadable)" in stdout

    code, _, stderr = run(*argv, "--top-k", "2")
    assert code == 2
    assert f"--out {out} holds the predictions of another run (--top-k 5, this run: 2)" in stderr
    assert "pass --overwrite" in stderr and len(stderr.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.glob("part-*")} == written  # nothing lost

    code, _, stderr = run(*argv, "--num-shards", "3", "--overwrite")
    assert code == 0, stderr
    assert sorted(p.name for p in out.glob("part-*")) == [
        f"part-0000{i}-of-00003.jsonl" for i in range(3)
    ]
    assert json.loads((out / "manifest.json").read_text())["num_shards"] == 3
    assert len(rows_of(out)) == 12


def test_a_folder_with_other_files_is_never_written_to(model_file, folder, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        code, _, stderr = run(folder, "--model", model_file, "--out", out, *extra)
        assert code == 2
        assert "already holds 1 file(s) that batch-predict did not write (thesis.tex)" in stderr
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_list_files_and_globs(model_file, folder, tmp_path):
    listing = tmp_path / "lists" / "images.txt"
    listing.parent.mkdir()
    relative = os.path.relpath(folder / "part0" / "c0.png", listing.parent)
    listing.write_text(f"# three images\n{relative}\n\n{folder / 'part1' / 'c1.png'}\n"
                       f"{folder / 'gone.png'}\n")  # fmt: skip
    code, _, stderr = run(listing, "--model", model_file, "--out", tmp_path / "a")
    assert code == 0, stderr
    rows = {Path(r["path"]).name: r for r in rows_of(tmp_path / "a")}
    assert sorted(rows) == ["c0.png", "c1.png", "gone.png"]
    assert rows["c0.png"]["path"] == str(folder / "part0" / "c0.png")
    assert rows["c1.png"]["classes"][0] == "c1"
    assert rows["gone.png"]["error"].startswith("cannot read the file")

    code, _, stderr = run(f"{folder}/*/c*.png", "--model", model_file, "--out", tmp_path / "b")
    assert code == 0, stderr
    assert sorted(Path(r["path"]).name for r in rows_of(tmp_path / "b")) == sorted(
        f"c{i}.png" for i in range(10)
    )


def test_a_tfds_split(model_file, tmp_path):
    """tfds' offline dummy data set (20 examples a split), cut into contiguous shards."""
    import tensorflow_datasets as tfds
    import tensorflow_datasets.testing  # noqa: F401  (registers dummy_mnist)

    data_dir = tmp_path / "tfds"
    tfds.testing.DummyMnist(data_dir=str(data_dir)).download_and_prepare()
    code, stdout, stderr = run("tfds:dummy_mnist:test", "--data-dir", data_dir,
                               "--model", model_file, "--out", tmp_path / "out",
                               "--num-shards", "3")  # fmt: skip
    assert code == 0, stderr
    assert "20 rows (20 images, 0 unreadable) in 3 shards" in stdout
    names = [r["path"] for r in rows_of(tmp_path / "out")]
    assert names == [f"tfds:dummy_mnist:test[{i}]" for i in range(20)]  # shards: ranges


# --- bad input: one sentence each, nothing written ----------------------------------------


def bad_cases(folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".only-hidden").write_text("")
    blank = tmp_path / "blank.txt"
    blank.write_text("# nothing\n\n")
    return [
        ([empty], f"input '{empty}' holds no files (hidden ones skipped); nothing to predict"),
        ([blank], f"list file '{blank}' names no image"),
        ([tmp_path / "nowhere"], "does not exist; give a folder, a glob"),
        ([f"{tmp_path}/*.jpeg"], "matches no file; nothing to predict"),
        ([folder, "--runner", "MapReduceRunner"], "unknown Beam runner 'MapReduceRunner'"),
        ([folder, "--no_such_option=1"], "--no_such_option: neither an option of batch-predict "
         "nor a Beam pipeline option"),
    ]  # fmt: skip


def test_bad_inputs_are_one_sentence_and_write_nothing(model_file, folder, tmp_path):
    for argv, sentence in bad_cases(folder, tmp_path):
        out = tmp_path / "out"
        code, stdout, stderr = run(*argv, "--model", model_file, "--out", out)
        assert code == 2, (argv, stderr)
        assert sentence in stderr, (argv, stderr)
        assert len(stderr.strip().splitlines()) == 1 and stdout == "", (argv, stderr)
        assert not out.exists(), argv


def test_a_runner_that_is_not_installed(model_file, folder, tmp_path):
    try:
        from apache_beam.runners.dataflow.internal import apiclient  # noqa: F401

        pytest.skip("Beam's Google Cloud extra is installed here")
    except ImportError:
        pass
    code, _, stderr = run(folder, "--model", model_file, "--out", tmp_path / "out",
                          "--runner", "DataflowRunner", "--project=p")  # fmt: skip
    assert code == 2
    assert "the DataflowRunner needs Beam's Google Cloud extra" in stderr
    assert "pip install 'apache-beam[gcp]'" in stderr


def test_without_the_beam_extra_it_says_how_to_install_it(model_file, folder, tmp_path,
                                                          monkeypatch):  # fmt: skip
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # as if not installed
    code, _, stderr = run(folder, "--model", model_file, "--out", tmp_path / "out")
    assert code == 2
    assert "runs on Apache Beam, which is not installed: pip install 'inception[beam]'" in stderr
    assert not (tmp_path / "out").exists()


def test_beam_is_imported_only_when_the_command_runs():
    script = (
        "import sys, inception, inception.batch, inception.cli.batch_predict as b\n"
        "b.parser().format_help()\n"
        "print('apache_beam' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False"]
