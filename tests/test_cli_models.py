"""`inception models` and the command dispatcher."""

import json

import inception
from inception import cli


def test_models_json(capsys):
    assert cli.main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {r["model"]: r for r in rows}
    assert set(by_name) == set(inception.list_models())
    assert by_name["inception_v4"]["params"] == 42_711_400
    assert by_name["inception_resnet_v2"]["params"] == 55_873_736
    assert by_name["inception_resnet_v2"]["variant"] == "slim"
    assert by_name["inception_resnet_v1"]["released_top1"] is None
    assert all(r["input"] == 299 and 70 < r["paper_top1"] < 90 for r in rows)


def test_unknown_command(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "models" in capsys.readouterr().out
