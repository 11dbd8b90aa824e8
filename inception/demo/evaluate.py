"""The evaluation step of ``make demo``: evaluate the small model the training demo produced.

``run(workdir, trained)`` evaluates the saved ``.keras`` model with 1 crop, then with 12 crops
together with the model rebuilt from its ``.weights.h5`` as a two-member ensemble (the two must
agree), and predicts two images with that ``Ensemble``, printing short tables.
"""

from __future__ import annotations

import os
from pathlib import Path

DEMO_LIMIT = 64  # images per evaluation: the demo stays short on a laptop CPU


def _images(folder, count):
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        found += [os.path.join(dirpath, f) for f in sorted(filenames)]
        if len(found) >= count:
            break
    return found[:count]


def run(workdir, trained: dict) -> dict:
    """``trained``: data_dir, model, image_size, num_classes, class_names, weights, keras_model."""
    del workdir  # nothing is written: the evaluation only reads the trained model and data
    from inception.app.resolve import resolve
    from inception.evaluation.evaluator import evaluate, format_table
    from inception.evaluation.predict import predict
    from inception.models.ensemble import Ensemble
    from inception.models.info import load_model

    saved = load_model(trained["keras_model"])
    rebuilt = resolve(
        trained["model"], trained["weights"], image_size=saved.inputs[0].shape[1]
    ).model
    saved.name, rebuilt.name = "saved", "rebuilt"
    common = dict(data=str(trained["data_dir"]), limit=DEMO_LIMIT, batch_size=4, progress=False)
    results = {"1_crop": evaluate(saved, crops=1, **common)}
    print(format_table(results["1_crop"]), end="\n\n")
    results["12_crops"] = evaluate([saved, rebuilt], crops=12, **common)
    print(format_table(results["12_crops"]), end="\n\n")

    ensemble = Ensemble([saved, rebuilt])
    images = _images(trained["data_dir"], 2)
    predictions = predict(images, ensemble, top=3)
    alone = predict(images, saved, top=3)
    for p, q in zip(predictions, alone):
        print(f"{Path(p['input']).name}: ensemble {_best(p)}; the saved model alone {_best(q)}")
        if p["predictions"][0]["class"] != q["predictions"][0]["class"]:
            raise RuntimeError(
                f"the Ensemble of two copies of one model disagrees with the model on {p['input']}"
            )
    results["predictions"] = predictions
    results["member_predictions"] = alone
    return results


def _best(result) -> str:
    return ", ".join(f"{x['class']} {100 * x['probability']:.1f}%" for x in result["predictions"])
