"""``make demo``: the project's main job on an embedded default, end to end on a CPU.

1. Builds each registered model, classifies a few generated sample images, and prints the model
   table with parameters and measured images/s. Where converted ImageNet weights are already in the
   cache (``inception convert`` / a previous ``weights="imagenet"``), it prints their top-5 classes.
2. When the training, evaluation and serving parts are installed, runs a short training of a small
   model on a generated data set, evaluates it, exports it and serves it (each step's ``run`` in
   ``inception.demo.train``, ``inception.demo.evaluate`` and ``inception.demo.serve``).

Run it with ``make demo`` or ``python -m inception.demo [--workdir DIR] [--skip-pipeline]``.
Everything is written under ``out/demo`` (emptied at the start of each run) or ``--workdir``,
and the folder is printed at the end.
"""

from __future__ import annotations

import argparse
import importlib
import io
import shutil
import time
from pathlib import Path

import numpy as np


def sample_images(out_dir: Path, n: int = 4, seed: int = 0) -> list[Path]:
    """Writes ``n`` synthetic JPEG photos (gradients, discs, stripes) and returns their paths."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = int(rng.integers(320, 480)), int(rng.integers(300, 420))
        base = np.linspace(0, 255, w)[None, :, None] * rng.uniform(0.3, 1, (1, 1, 3))
        img = Image.fromarray(np.broadcast_to(base, (h, w, 3)).astype("uint8"))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
            size = int(rng.integers(30, 160))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape([x0, y0, x0 + size, y0 + size], fill=color)
        path = out_dir / f"sample_{i}.jpg"
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def load_batch(paths, prep) -> np.ndarray:
    """The images as the model's preprocessing (``inception.Preprocessing``) prepares them: the
    crop of ``inception eval``, resized and scaled."""
    import tensorflow as tf

    from inception.preprocessing.crops import extract

    images = [tf.io.decode_image(Path(p).read_bytes(), channels=3) for p in paths]
    return np.concatenate([extract(image, 1, prep).numpy() for image in images])


def model_table(paths) -> None:
    import tensorflow as tf

    from inception.app.builders import build
    from inception.models.registry import get_model_config, list_models
    from inception.models.summary import count_macs
    from inception.preprocessing import decode_predictions

    header = f"{'model':<22}{'variant':<8}{'params':>12}{'GMACs':>8}{'img/s':>8}"
    print(header + "  top class (random weights)")
    for name in list_models():
        config = get_model_config(name)
        model = build(name)
        x = tf.constant(load_batch(paths, config.preprocessing))
        fn = tf.function(lambda x, model=model: model(x, training=False))
        fn(x)
        start = time.perf_counter()
        probs = fn(x).numpy()
        rate = len(paths) / (time.perf_counter() - start)
        top = decode_predictions(probs, top=1)[0][0][1]
        print(
            f"{name:<22}{config.default_variant:<8}{model.count_params():>12,}"
            f"{count_macs(model) / 1e9:>8.2f}{rate:>8.1f}  {top}"
        )
        pretrained_top5(name, model, x, paths)


def pretrained_top5(name, model, x, paths) -> None:
    """Prints top-5 ImageNet classes per image if converted weights for ``name`` are cached."""
    from inception.preprocessing import decode_predictions
    from inception.weights import cache_path
    from inception.weights.manifest import DEFAULT_WEIGHTS, resolve

    try:
        entry = resolve(name, DEFAULT_WEIGHTS)
    except Exception:  # no public checkpoint (Inception-ResNet-v1)
        return
    path = cache_path(entry, model)
    if not path.is_file():
        print(
            f"{'':<22}(no converted ImageNet weights cached: {name}(weights='imagenet') makes them)"
        )
        return
    model.load_weights(path)
    for p, row in zip(paths, decode_predictions(model.predict(x, verbose=0), top=5)):
        print(f"{'':<22}{p.name}: " + ", ".join(f"{n} {s:.2f}" for _, n, s in row))


PIPELINE = [
    ("train", "inception.demo.train"),
    ("evaluate", "inception.demo.evaluate"),
    ("export + serve", "inception.demo.serve"),
]


def pipeline(workdir: Path) -> None:
    trained = None
    for title, module_name in PIPELINE:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            print(f"\n== {title}: not available in this installation")
            continue
        print(f"\n== {title}")
        start = time.perf_counter()
        if trained is None:
            trained = module.run(workdir)
            from inception.plot import plot_run

            print(f"   training curves: {plot_run(Path(trained['keras_model']).parent)}")
        else:
            module.run(workdir, trained)
        print(f"   ({title}: {time.perf_counter() - start:.0f} s)")


DEFAULT_WORKDIR = Path("out") / "demo"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inception.demo", description=__doc__)
    parser.add_argument(
        "--workdir",
        help=f"where the demo writes (default {DEFAULT_WORKDIR}, emptied at the start of each run)",
    )
    parser.add_argument("--skip-pipeline", action="store_true", help="only the model table")
    args = parser.parse_args(argv)
    from inception.cli import quiet_tensorflow

    quiet_tensorflow()
    workdir = Path(args.workdir) if args.workdir else DEFAULT_WORKDIR
    if not args.workdir and workdir.exists():  # the default folder is reused, never piled up
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"== models (sample images and outputs under {workdir.resolve()})")
    model_table(sample_images(workdir / "samples"))
    if not args.skip_pipeline:
        pipeline(workdir)
    print(f"\ndemo files: {workdir.resolve()}")
    return 0
