"""Evaluation throughput (images/s) with 1 and 144 crops, against one-crop-at-a-time baselines.

``inception.evaluate`` runs the whole path (decode, crop in tf.data, all crops of a batch of
images in one forward pass, softmax averaging, top-k). The baseline, measured in the same run on
the same crops, feeds the network one crop per call (batch 1), as a naive loop would. Each
number is the median of ``--repeats`` runs; the first (graph tracing) step is not timed.

    python benchmarks/evaluation.py                               # IR-v2, 299 px (minutes)
    python benchmarks/evaluation.py --model inception_resnet_v1 --size 75 --images 4   # quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_images(root, count, size):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"class{i % 2}")
        os.makedirs(folder, exist_ok=True)
        h, w = int(size * 1.2), int(size * 1.5)  # landscape, larger than the crops
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"{i}.jpg"), quality=90
        )


def batched(model, data, crops, labels_file, batch_size):
    import inception

    result = inception.evaluate(
        model, data, crops=crops, batch_size=batch_size, progress=False, graph=True,
        labels_file=labels_file,
    )  # fmt: skip
    return result["images_per_second"]


def one_crop_at_a_time(model, size, crops, images):
    import numpy as np
    import tensorflow as tf

    from inception.evaluation.crops import extract_crops

    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, (int(size * 1.2), int(size * 1.5), 3)).astype(np.float32)
    crop_batch = extract_crops(image, crops, size).numpy() / 127.5 - 1
    forward = tf.function(lambda x: model(x, training=False), autograph=False)
    forward(crop_batch[:1])  # trace
    start = time.perf_counter()
    for _ in range(images):
        probs = [forward(crop_batch[i : i + 1]) for i in range(len(crop_batch))]
        np.mean([p.numpy() for p in probs], axis=0)
    return images / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="inception_resnet_v2")
    p.add_argument("--size", type=int, default=299)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--images", type=int, default=None, help="images per run (default 32 / 1)")
    p.add_argument("--batch-size", type=int, default=16, help="images per step with 1 crop")
    p.add_argument(
        "--baseline-images", type=int, default=None, help="images per baseline run (16 / 1)"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--crops", default="1,144")
    args = p.parse_args()

    import tensorflow as tf

    import inception

    model = inception.build(args.model, input_shape=(args.size, args.size, 3), classes=args.classes)
    schemes = [int(c) for c in args.crops.split(",")]
    print(
        f"{args.model} at {args.size}px, {os.cpu_count()} CPU cores, TF {tf.__version__}, "
        f"devices: {[d.device_type for d in tf.config.list_logical_devices()]}"
    )
    print("| crops | images/s batched | images/s one crop per call | speed-up |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as root:
        labels = os.path.join(root, "labels.txt")  # the model's classes; images use 2 of them
        with open(labels, "w") as f:
            f.write("".join(f"class{i}\n" for i in range(args.classes)))
        for crops in schemes:
            images = args.images or (32 if crops == 1 else 1)
            batch = max(1, args.batch_size // crops)  # 144 crops: one image (144 crops) a step
            data = os.path.join(root, f"c{crops}")
            # one extra batch, as the first (traced) step is left out of images/s
            write_images(data, images + batch, args.size)
            fast = statistics.median(
                batched(model, data, crops, labels, batch) for _ in range(args.repeats)
            )
            few = args.baseline_images or (16 if crops == 1 else 1)
            slow = statistics.median(
                one_crop_at_a_time(model, args.size, crops, few) for _ in range(args.repeats)
            )
            print(f"| {crops} | {fast:.3g} | {slow:.3g} | {fast / slow:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
