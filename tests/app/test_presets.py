"""Presets: one record per registered model and its default weights; the defaults and the model
table read from them."""

import json

import pytest

from inception.app import resolve, zoo
from inception.cli import checks
from inception.models.registry import get_model_config, list_models
from inception.preprocessing import Preprocessing
from inception.weights import manifest
from inception.weights.manifest import DEFAULT_WEIGHTS, NO_WEIGHTS
from inception.weights.presets import get_preset, list_presets


def test_every_registered_model_has_a_preset():
    assert [p.name for p in list_presets()] == list_models()
    data = manifest.load_manifest()
    for preset in list_presets():
        config = get_model_config(preset.name)
        assert (preset.title, preset.num_classes) == (config.title, config.num_classes)
        assert (preset.paper_top1, preset.paper_top5) == (config.paper_top1, config.paper_top5)
        assert preset.weights == data["defaults"].get(preset.name)
        if preset.weights is None:
            assert preset.no_checkpoint and preset.released_top1 is None
            assert preset.preprocessing == config.preprocessing
            with pytest.raises(manifest.WeightsError, match=preset.no_checkpoint[:30]):
                manifest.resolve(preset.name, DEFAULT_WEIGHTS)
        else:
            entry = manifest.resolve(preset.name, DEFAULT_WEIGHTS)
            assert entry.name == preset.weights and preset.no_checkpoint is None
            assert (preset.released_top1, preset.released_top5) == (entry.top1, entry.top5)
            assert preset.preprocessing == Preprocessing.from_dict(entry.preprocessing)
        assert preset.input_size == preset.preprocessing.input_size == 299
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_preset("nope")


def test_weights_defaults_are_stated_once():
    assert resolve.DEFAULT_WEIGHTS is DEFAULT_WEIGHTS == "imagenet"
    assert resolve.NO_WEIGHTS is NO_WEIGHTS is checks.NO_WEIGHTS is manifest.NO_WEIGHTS


def test_the_model_table_reads_the_presets(capsys):
    from inception import cli

    assert cli.main(["models", "--json"]) == 0
    rows = {r["model"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == set(list_models())
    for preset in list_presets():
        row = rows[preset.name]
        assert row == zoo.model_row(preset.name)
        assert (row["title"], row["input"]) == (preset.title, preset.input_size)
        assert (row["paper_top1"], row["paper_top5"]) == (preset.paper_top1, preset.paper_top5)
        assert (row["released_top1"], row["released_top5"]) == (
            preset.released_top1,
            preset.released_top5,
        )
