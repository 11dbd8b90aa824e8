"""The training step of ``make demo``: a generated data set, a short real ``inception train`` of
Inception-ResNet-v1 at 75x75 on the CPU, and its evaluation.

The data set: ``CLASSES`` classes of synthetic photographs-to-be (a class colour, a textured
background, a bright square at a random place), written as JPEG folders ``train/<class>`` and
``validation/<class>``. It is easy on purpose: the point is to show the whole loop (input
pipeline, ``fit`` with the paper's recipe, checkpoints, moving averages, export, evaluation) in a
few minutes on 2 cores. Runs on the backend Keras runs on (``KERAS_BACKEND``). Alone:
``python -m inception.demo.train [DIR]``.
"""

from __future__ import annotations

import io
import json
import os
import pathlib

import numpy as np
from PIL import Image

MODEL = "inception_resnet_v1"
IMAGE_SIZE = 75
CLASSES = ("red", "green", "blue", "yellow")
COLOURS = ((220, 40, 40), (40, 200, 60), (40, 70, 220), (230, 210, 40))
TRAIN_PER_CLASS, VAL_PER_CLASS = 48, 12
STEPS, BATCH = 120, 16


def make_dataset(root: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """Writes ``root/{train,validation}/<class>/<n>.jpg`` (96x96 JPEGs); returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", TRAIN_PER_CLASS), ("validation", VAL_PER_CLASS)):
        for name, colour in zip(CLASSES, COLOURS):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                image = np.empty((96, 96, 3), np.float32)
                image[:] = np.asarray(colour) * rng.uniform(0.7, 1.1)
                image += rng.normal(0, 25, image.shape)
                y, x = rng.integers(0, 64, 2)
                image[y : y + 32, x : x + 32] = rng.uniform(150, 255)
                buffer = io.BytesIO()
                Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "JPEG")
                (folder / f"{n:03d}.jpg").write_bytes(buffer.getvalue())
    return root


def run(workdir: pathlib.Path) -> dict:
    """Generates the data, trains, evaluates; returns what the later demo steps need."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from inception.training.loop import train

    workdir = pathlib.Path(workdir)
    data_dir = make_dataset(workdir / "data")
    model_dir = workdir / "train"
    print(f"training {MODEL} at {IMAGE_SIZE}x{IMAGE_SIZE} on {data_dir} ({len(CLASSES)} classes)")
    print(
        f"  inception train --model {MODEL} --data {data_dir} --model-dir {model_dir} "
        f"--image-size {IMAGE_SIZE} --batch-size {BATCH} --steps {STEPS} --recipe demo --seed 0 "
        "--log-every 10"
    )
    result = train(
        MODEL, os.fspath(data_dir), model_dir, image_size=IMAGE_SIZE, batch_size=BATCH,
        steps=STEPS, recipe="demo", seed=0, strategy="auto", log_every=10,
    )  # fmt: skip
    metrics = result["metrics"]
    print(
        f"evaluation of the averaged weights on {metrics['num_images']} validation images: "
        f"top-1 {metrics['top1']:.1f}% (chance {100 / len(CLASSES):.0f}%)"
        + ("" if metrics["top5"] is None else f", top-5 {metrics['top5']:.1f}%")
    )
    return {
        "data_dir": os.fspath(data_dir),
        "model": MODEL,
        "image_size": IMAGE_SIZE,
        "num_classes": len(CLASSES),
        "class_names": result["class_names"],
        "weights": result["weights"],
        "keras_model": result["keras_model"],
        "metrics": metrics,
    }


if __name__ == "__main__":
    import sys
    import tempfile

    out = run(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()))
    print(json.dumps(out, indent=2))
