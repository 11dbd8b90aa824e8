"""``inception models``: the registered models with parameters, input size and accuracy."""

from __future__ import annotations

import argparse
import json

from . import flags


def _fmt(value):
    return "-" if value is None else f"{value:.1f}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="inception models",
        description="List the registered models with parameters, GMACs at 299x299, input size "
        "and the paper's and the released checkpoints' top-1/top-5 accuracy.",
    )
    p.add_argument("--all-variants", action="store_true", help="one row per variant")
    flags.add_json(p)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    from inception.app.zoo import model_row
    from inception.models.registry import get_model_config
    from inception.weights.presets import list_presets

    rows = []
    for preset in list_presets():
        config = get_model_config(preset.name)
        variants = config.variants if args.all_variants else (config.default_variant,)
        rows += [model_row(preset.name, v) for v in variants]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = f"{'model':<22}{'variant':<8}{'params':>12}{'GMACs':>8}{'input':>7}"
    header += f"{'paper top-1/5':>16}{'released top-1/5':>19}"
    print(header)
    for r in rows:
        paper = f"{_fmt(r['paper_top1'])}/{_fmt(r['paper_top5'])}"
        released = f"{_fmt(r['released_top1'])}/{_fmt(r['released_top5'])}"
        print(
            f"{r['model']:<22}{r['variant']:<8}{r['params']:>12,}{r['gmacs']:>8.2f}"
            f"{r['input']:>7}{paper:>16}{released:>19}"
        )
    return 0
