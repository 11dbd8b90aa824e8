"""``inception convert``: a TF-slim / timm / Keras checkpoint -> this project's ``.weights.h5``.

    inception convert SRC --model NAME [--classes 1000|1001] [--aux-logits] --out FILE
                      [--from slim|timm|keras] [--keras FILE] [--image-size N] [--quiet]
    inception convert --list

SRC is a local checkpoint (TF-slim/TF1 checkpoint prefix, folder or .tar.gz; timm .safetensors;
Keras h5) or a manifest name (``slim:inception_v4_2016_09_09``), downloaded and verified first.
Every source tensor used is listed; the conversion fails, naming them, if a source tensor is left
unused, a target weight is not filled, or shapes disagree.
"""

from __future__ import annotations

import argparse
import os

from . import flags

PRETRAINED_MODELS = ("inception_v4", "inception_resnet_v2")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception convert",
        description="Convert a TF-slim, timm or Keras checkpoint into a .weights.h5 that loads "
        "into build(NAME, variant='slim', classes=..., weights=None).",
    )
    p.add_argument("source", nargs="?", help="checkpoint path, or a manifest name (see --list)")
    p.add_argument("--model", choices=PRETRAINED_MODELS, help="target network")
    p.add_argument("--classes", type=int, default=1000, choices=(1000, 1001),
                   help="1000 (drops slim's background class 0) or 1001 (keeps it)")  # fmt: skip
    p.add_argument("--aux-logits", action="store_true",
                   help="keep the aux head (TF-slim checkpoints only; 299x299 input)")  # fmt: skip
    p.add_argument("--no-top", action="store_true", help="convert without the classifier")
    flags.add_renamed(p, "--format", p.add_argument(
        "--from", dest="source_format", choices=("slim", "timm", "keras"),
        help="the checkpoint's layout (default: from the file)"))  # fmt: skip
    p.add_argument("--out", help="the .weights.h5 file to write")
    p.add_argument("--keras", metavar="FILE", help="also save the whole model as a .keras file")
    flags.add_renamed(p, "--input-size", flags.add_image_size(p))
    p.add_argument("--verbose", action="store_true", help="list every source tensor used")
    flags.add_quiet(p)
    p.add_argument("--list", action="store_true", help="list the manifest's pretrained entries")
    return p


def _list() -> int:
    from inception.weights.manifest import entries, load_manifest

    defaults = set(load_manifest()["defaults"].values())
    for name, e in entries().items():
        acc = f"top-1 {e.top1}" if e.top1 else "top-1 n/a"
        hash_ = e.hash or "no published hash"
        mark = "*" if name in defaults else " "
        print(f"{mark} {name:<42} {e.model:<20} {e.num_classes:>5} classes  {acc:<12} "
              f"{e.license}  {hash_}\n      {e.url}")  # fmt: skip
    print("* the default entry of its model (weights='imagenet')")
    return 0


def main(argv=None) -> int:
    from inception.errors import UsageError

    args = parser().parse_args(argv)
    if args.list:
        return _list()
    if not args.source or not args.model or not args.out:
        raise UsageError(
            "convert needs SRC, --model and --out, e.g. `inception convert "
            "inception_v4.ckpt --model inception_v4 --out v4.weights.h5` (or --list)."
        )
    if not args.out.endswith(".weights.h5"):
        raise UsageError(f"--out must end with .weights.h5 (got {args.out!r}).")
    if args.keras and not args.keras.endswith(".keras"):
        raise UsageError(f"--keras must end with .keras (got {args.keras!r}).")
    if args.aux_logits and args.no_top:
        raise UsageError("--aux-logits needs the classifier: drop --no-top.")

    from inception.app.builders import build
    from inception.models.info import model_info, save_model
    from inception.preprocessing import INPUT_SIZE
    from inception.weights.convert import convert_into
    from inception.weights.download import fetch
    from inception.weights.loading import load_weights
    from inception.weights.manifest import get_entry
    from inception.weights.sources import detect_format, read_source

    def say(message):
        if not args.quiet:
            print(f"inception convert: {message}", flush=True)

    source, fmt, name = args.source, args.source_format, args.source
    if not os.path.exists(source) and not os.path.exists(f"{source}.index") and ":" in source:
        entry = get_entry(source)
        if entry.model != args.model:
            raise UsageError(f"{entry.name} is a {entry.model} checkpoint, not {args.model}.")
        say(f"fetching {entry.name}")
        source, fmt = str(fetch(entry)), entry.format
    if not os.path.exists(source) and not os.path.exists(f"{source}.index"):
        raise FileNotFoundError(f"checkpoint {source!r} does not exist.")
    fmt = fmt or detect_format(source)
    say(f"reading {source} ({fmt if fmt != 'converted' else 'Keras 3 weights file'})")
    checkpoint = None if fmt == "converted" else read_source(source, fmt)  # fails fast
    size = args.image_size or INPUT_SIZE
    model = build(
        args.model,
        variant="slim",
        include_top=not args.no_top,
        classes=args.classes,
        aux_logits=args.aux_logits,
        input_shape=(size, size, 3) if (args.image_size or args.aux_logits) else None,
        weights=None,
    )
    say(f"converting into {args.model} ({'no top' if args.no_top else f'{args.classes} classes'})")
    if checkpoint is None:
        load_weights(model, args.model, source, include_top=not args.no_top, classes=args.classes,
                     aux_logits=args.aux_logits)  # fmt: skip
        info = model_info(model)
    else:
        report = convert_into(model, args.model, checkpoint)
        if args.verbose:
            print("\n".join(report.lines()))
        if not args.quiet:
            print(report.summary())
        info = _info(model, args, fmt, name)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_model(model, args.out, info)
    print(f"wrote {args.out}")
    if args.keras:
        save_model(model, args.keras, info)
        print(f"wrote {args.keras}")
    return 0


def _info(model, args, fmt, name):
    """The record of a converted ImageNet checkpoint: ImageNet's classes, the preprocessing of
    the manifest entry it came from (or of its format's entries), its provenance."""
    from inception.models.info import model_info
    from inception.preprocessing import imagenet_synsets
    from inception.weights.manifest import preprocessing_for

    top = not args.no_top
    prep = preprocessing_for(args.model, fmt, name)
    shape = model.inputs[0].shape
    return model_info(model).replace(
        class_names=imagenet_synsets(args.classes) if top else None,
        label_offset=1 if top and args.classes == 1001 else 0,
        preprocessing=prep.replace(input_size=shape[1]) if shape[1] else prep,
        weights=name,
    )
