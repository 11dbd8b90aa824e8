"""Every command and snippet of the documentation runs as written.

The fenced ``sh``/``bash`` and ``python`` blocks of README.md, docs/*.md and serve/README.md run
in order, each in a new process (``bash -euo pipefail``; ``python``), in one fresh folder per
document, offline, three documents at a time. What the documents rely on is provided, full size
but random:

* ``HOME`` is a new folder, shared by all documents: the weights cache (``~/.keras/inception``)
  and ``~/tensorflow_datasets`` start empty. Its ``downloads/manual`` holds miniature ILSVRC-2012
  tars (4 validation images), so ``--data imagenet2012`` runs tfds' real builder.
* ``INCEPTION_MANIFEST`` is ``weights/manifest.json`` with every URL on a server on 127.0.0.1
  that serves random checkpoints in the published layouts (the TF-slim tars of both networks,
  timm's Inception-ResNet-v2 safetensors), with hashes to match: ``weights="imagenet"``
  downloads, checks, converts and caches as it does online. This happens once for the default
  checkpoints and tfds prepares imagenet2012 once, before the documents start (``WARM``).
* The files of ``PLACEHOLDERS`` are written into a document's folder when it names them;
  ``serve/`` is the repository's.
* ``~/.curlrc`` makes ``curl`` fail on an HTTP error. Ports 8500/8501 become free ports.
  ``SUBSTITUTIONS`` shortens runs (steps, crops, image size) and nothing else; each must still
  match a document, so none goes stale unnoticed.

Markers, an HTML comment on the line before a block: ``<!-- test: skip: REASON -->`` (Docker,
this test suite itself, 100 epochs of ImageNet); ``<!-- test: background -->`` for a server run
in the foreground: it starts in the background, the block counts as done when ``/healthz``
answers, and it stops when the next server starts or the document ends. Blocks without a
language (synopses, sample output) are not run; ``json`` blocks must parse. A block that the
README repeats from a page of docs/ runs once, on that page.
"""

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port
from ilsvrc import write_ilsvrc2012
from PIL import Image
from weights_fixtures import SPECS, LocalServer, file_hash, random_tensors, slim_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    "README.md",
    *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md"))),
    "serve/README.md",
]
RUN = {"sh", "bash", "python"}
TIMEOUT = 900
WORKERS = 3  # documents at once: most of a block's time is single-threaded tracing
LONGEST_FIRST = {"README.md": 3, "docs/training.md": 2, "docs/serving.md": 1}  # started first

SUBSTITUTIONS = [  # (text, replacement) in every document: run lengths and sizes only
    ("--crops 144", "--crops 1"),  # 144 crops: tests/evaluation/test_eval.py
    ("crops=12,", "crops=1,"),  # 12 crops of full-size models: tests/evaluation/test_eval.py
    ("classes=1000, classifier_activation=None,", "classes=1000, input_shape=(107, 107, 3),"
     " classifier_activation=None,"),
    ("image_size=(299, 299), batch_size=256", "image_size=(107, 107), batch_size=2"),
    ("epochs=100, steps_per_epoch=5004)", "epochs=1, steps_per_epoch=1)"),
]  # fmt: skip


WARM = """
import inception
inception.data.load_source("imagenet2012")
inception.InceptionV4(weights="imagenet")
inception.InceptionResNetV2(weights="imagenet")
"""

# --- the documents ---------------------------------------------------------------------------


def blocks(text):
    """``(line, language, body, marker)`` of each fenced block."""
    out, lines, i, marker = [], text.splitlines(), 0, None
    while i < len(lines):
        line = lines[i]
        found = re.fullmatch(r"<!-- test: (.+?) -->", line.strip())
        if found:
            marker = found.group(1)
        elif line.startswith("```"):
            start, lang, body = i + 1, line[3:].strip(), []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((start, lang, "\n".join(body) + "\n", marker))
            marker = None
        elif line.strip():
            marker = None
        i += 1
    return out


# --- what the documents name -------------------------------------------------------------------


def jpeg(path, seed, size=(300, 400)):
    rng = np.random.default_rng(seed)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


def image_folder(root, classes, per_class=1):
    for c, name in enumerate(classes):
        for i in range(per_class):
            jpeg(Path(root) / name / f"{i}.jpg", seed=10 * c + i, size=(120, 160))


@functools.cache
def slim_tar(name, member):
    """A TF-slim release archive (``member.index``/``.data-*`` inside), gzip level 1."""
    prefix, _ = slim_checkpoint(name)
    path = Path(prefix).parent / f"{member}.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for f in Path(prefix).parent.glob(Path(prefix).name + ".*"):
            tar.add(f, arcname=member + f.name[len(Path(prefix).name) :])
    return path


@functools.cache
def timm_safetensors(name):
    from safetensors.numpy import save_file

    prefix, _ = slim_checkpoint(name)
    path = Path(prefix).parent / f"timm-{name}.safetensors"
    save_file(random_tensors(SPECS[name]().timm, seed=3), str(path))
    return path


@functools.cache
def keras_h5():
    """keras.applications.InceptionResNetV2 saved as Keras' legacy h5 (random weights)."""
    import keras

    prefix, _ = slim_checkpoint("inception_resnet_v2")
    path = Path(prefix).parent / "keras-irv2.h5"
    keras.applications.InceptionResNetV2(weights=None).save(path)
    return path


def flowers_model(path):
    """A model as `inception train --data flowers` leaves it: its class names inside."""
    import inception

    model = inception.build("inception_resnet_v1", classes=3, input_shape=(75, 75, 3))
    info = inception.model_info(model).replace(class_names=("daisy", "rose", "tulip"))
    path.parent.mkdir(parents=True, exist_ok=True)
    inception.save_model(model, str(path), info)


def link(src, dest):
    os.symlink(src, dest)


PLACEHOLDERS = {  # name in a document -> how to make it in the document's folder
    "photo.jpg": lambda d: jpeg(d / "photo.jpg", 1),
    "cat.jpg": lambda d: jpeg(d / "cat.jpg", 2),
    "photos/": lambda d: (jpeg(d / "photos/a.jpg", 3), jpeg(d / "photos/b/c.png", 4),
                          (d / "photos/notes.txt").write_text("not an image\n")),
    "--data val": lambda d: image_folder(d / "val", ["n01440764", "n01443537"]),
    "flowers": lambda d: [image_folder(d / "flowers" / split, ["daisy", "rose", "tulip"], 2)
                          for split in ("train", "validation")],
    "runs/flowers/model.keras": lambda d: flowers_model(d / "runs/flowers/model.keras"),
    "labels.txt": lambda d: (d / "labels.txt").write_text("a\nb\nc\nd\ne\n"),
    "inception_v4.ckpt": lambda d: [
        link(f, d / ("inception_v4.ckpt" + f.name[len("model.ckpt"):]))
        for f in Path(slim_checkpoint("inception_v4")[0]).parent.glob("model.ckpt.*")],
    "inception_v4_2016_09_09.tar.gz": lambda d: link(
        slim_tar("inception_v4", "inception_v4.ckpt"), d / "inception_v4_2016_09_09.tar.gz"),
    "inception_resnet_v2_2016_08_30.tar.gz": lambda d: link(
        slim_tar("inception_resnet_v2", "inception_resnet_v2_2016_08_30.ckpt"),
        d / "inception_resnet_v2_2016_08_30.tar.gz"),
    "model.safetensors": lambda d: link(
        timm_safetensors("inception_resnet_v2"), d / "model.safetensors"),
    "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5": lambda d: link(
        keras_h5(), d / "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5"),
    "serve/": lambda d: shutil.copytree(ROOT / "serve", d / "serve"),
}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """``(env, root)``: the environment every block runs in."""
    root = tmp_path_factory.mktemp("docs")
    home = root / "home"
    write_ilsvrc2012(home / "tensorflow_datasets" / "downloads" / "manual", num_val=4)
    # curl answers an HTTP error with a failing exit code here, so a documented request that
    # the server refuses fails its block (the documents keep plain `curl`)
    (home / ".curlrc").write_text("--fail\n--silent\n--show-error\n")
    published = {
        "slim:inception_v4_2016_09_09": slim_tar("inception_v4", "inception_v4.ckpt"),
        "slim:inception_resnet_v2_2016_08_30": slim_tar(
            "inception_resnet_v2", "inception_resnet_v2_2016_08_30.ckpt"
        ),
        "timm:inception_resnet_v2.tf_ens_adv_in1k": timm_safetensors("inception_resnet_v2"),
    }
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    files = {f"/{name}": path.read_bytes() for name, path in published.items()}
    with LocalServer(files) as server:
        for name, entry in manifest["entries"].items():
            entry["url"] = f"{server.url}/{name}"  # unpublished ones answer 404
            if name in published and entry.get("hash"):
                algorithm = entry["hash"].split(":")[0]
                entry["hash"] = f"{algorithm}:{file_hash(published[name], algorithm)}"
        (root / "manifest.json").write_text(json.dumps(manifest))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KERAS_", "INCEPTION_", "TFDS_", "TF_CONFIG"))
        }
        env.update(
            HOME=str(home),
            INCEPTION_MANIFEST=str(root / "manifest.json"),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            PYTHONUNBUFFERED="1",
        )
        # Shared first steps, once before the documents run side by side: tfds prepares
        # imagenet2012 and the default checkpoints are downloaded and converted into the cache.
        for _ in range(2):  # once more if the first try fails (seen once, on a loaded machine)
            warm = subprocess.run([sys.executable, "-c", WARM], env=env, cwd=root, text=True,
                                  capture_output=True, timeout=TIMEOUT)  # fmt: skip
            if warm.returncode == 0:
                break
        assert warm.returncode == 0, warm.stdout[-3000:] + warm.stderr[-3000:]
        yield env, root


# --- running -----------------------------------------------------------------------------------


def document_text(document):
    text = (ROOT / document).read_text()
    for old, new in SUBSTITUTIONS:
        text = text.replace(old, new)
    return text


@functools.cache
def first_occurrence() -> dict:
    """Block (language and text) -> the document that runs it: the page under docs/ or serve/
    that has it, else the README (which repeats a few of their examples)."""
    first = {}
    for document in DOCUMENTS[1:] + DOCUMENTS[:1]:
        for _, lang, body, _ in blocks(document_text(document)):
            first.setdefault(f"{lang == 'python'}\n{body}", document)
    return first


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start(lang, body, work, env, log):
    if lang == "python":
        script = work / f".block{len(list(work.glob('.block*')))}.py"
        script.write_text(body)
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", body]
    return subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def wait_healthy(proc, port):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(1)
    return False


def run_block(lang, body, marker, work, env, log, servers):
    """Runs one block; ``(ok, status)``. A background block's server joins ``servers``."""
    if marker != "background":
        proc = start(lang, body, work, env, log)
        try:
            ok = proc.wait(timeout=TIMEOUT) == 0
        except subprocess.TimeoutExpired:
            ok = False
        finally:
            stop(proc)  # and whatever it left running in the background
        return ok, f"exit {proc.returncode}"
    while servers:
        stop(servers.pop())
    rest = re.search(r"--rest-port (\d+)", body)
    if not rest:
        return False, "a background server needs --rest-port"
    servers.append(start(lang, body, work, env, log))
    ok = wait_healthy(servers[-1], rest.group(1))
    return ok, "healthy" if ok else f"exit {servers[-1].poll()}"


_MAKING = threading.Lock()


def run_document(document, env, folder) -> str | None:
    """Runs ``document``'s blocks in order in ``folder/work``; the first failure, or ``None``."""
    text = document_text(document)
    ports = {"8501": str(free_port()), "8500": str(free_port())}
    work = folder / "work"
    work.mkdir()
    with _MAKING:  # one document at a time: the fixtures are cached, Keras builds in-process
        for name, make in PLACEHOLDERS.items():
            made_here = name.startswith("runs/") and f"--model-dir {Path(name).parent}" in text
            if name in text and not made_here:
                make(work)
    ran, servers = 0, []
    try:
        for line, lang, body, marker in blocks(text):
            if lang == "json":
                json.loads(body)
                continue
            skip = (marker or "").startswith("skip")
            if (
                lang not in RUN
                or skip
                or first_occurrence()[f"{lang == 'python'}\n{body}"] != document
            ):
                continue
            for port, free in ports.items():
                body = body.replace(port, free)
            log_path = folder / f"block{line}.log"
            with open(log_path, "w") as log:
                ok, status = run_block(lang, body, marker, work, env, log, servers)
            if not ok:
                output = log_path.read_text()[-6000:]
                where = f"{document}:{line} ({lang})"
                return f"{where} failed ({status}):\n{body}\n--- output ---\n{output}"
            ran += 1
    finally:
        while servers:
            stop(servers.pop())
    if not ran and document in ("README.md", "serve/README.md"):
        return f"{document}: nothing ran"
    return None


@pytest.fixture(scope="module")
def runs(sandbox, request, tmp_path_factory):
    """The selected documents, run ``WORKERS`` at a time: document -> future of its failure."""
    env, _ = sandbox
    selected = [
        item.callspec.params["document"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_document_runs_as_written"
    ]
    selected.sort(key=lambda d: -LONGEST_FIRST.get(d, 0))
    with ThreadPoolExecutor(WORKERS) as pool:
        yield {
            d: pool.submit(run_document, d, env, tmp_path_factory.mktemp("doc")) for d in selected
        }


def test_substitutions_still_apply():
    texts = [(ROOT / d).read_text() for d in DOCUMENTS]
    for old, _ in SUBSTITUTIONS:
        assert any(old in t for t in texts), f"the substitution {old!r} matches no document"
    assert len(DOCUMENTS) > 4 and all(blocks(t) for t in texts)


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_runs_as_written(document, runs):
    failure = runs[document].result()
    assert failure is None, failure
