"""The PyTorch half of ``benchmarks/inference.py``: timm's Inception-v4 and Inception-ResNet-v2
(random weights, eval mode, ``torch.inference_mode``, channels-last), float32 and bfloat16.

It runs in its own process (TensorFlow and PyTorch in one process crash on the development
machine) and measures only when asked, so its rounds alternate with the TensorFlow ones: it
builds and warms up its models, prints ``{"ready": ...}``, then for every ``time BATCH`` line on
stdin prints one JSON line of ``[images/s, images per CPU-second]`` per model; ``quit`` ends it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

MODELS = ("inception_v4", "inception_resnet_v2")


def timed(model, x, batch, min_seconds):
    import torch

    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    with torch.inference_mode():
        while True:
            model(x)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                return calls * batch / elapsed, calls * batch / (time.process_time() - cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16])
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=299)
    args = parser.parse_args()

    import timm
    import torch

    torch.set_num_threads(os.cpu_count())
    models = {}
    for name in MODELS:
        model = timm.create_model(name, pretrained=False).eval()
        model = model.to(memory_format=torch.channels_last)
        models[f"timm.{name}|float32"] = (model, torch.float32)
        models[f"timm.{name}|bfloat16"] = (copy.deepcopy(model).to(torch.bfloat16), torch.bfloat16)
    inputs = {}
    for batch in args.batch_sizes:
        x = torch.rand(batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
        inputs[batch] = {torch.float32: x, torch.bfloat16: x.to(torch.bfloat16)}
        with torch.inference_mode():
            for model, dtype in models.values():
                model(inputs[batch][dtype])  # warm-up
    versions = {"torch": torch.__version__, "timm": timm.__version__}
    print(json.dumps({"ready": list(models), "versions": versions}), flush=True)

    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        batch = int(words[1])
        rates = {
            label: timed(model, inputs[batch][dtype], batch, args.min_seconds)
            for label, (model, dtype) in models.items()
        }
        print(json.dumps(rates), flush=True)


if __name__ == "__main__":
    main()
