"""``inception serve`` at start-up: a taken port (also one taken between the check and the bind)
and a base path that is a version folder are refused in one line, before anything loads; a
model with no version to serve says why (a warning, ``/healthz``, the model status).

No model is exported: version folders hold a stand-in ``saved_model.pb``. Only the bind-race
test imports TensorFlow (the REST and gRPC servers need it). Everything binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import socket
import subprocess
import sys

import pytest

from inception.cli import main
from inception.cli import serve as serve_cli
from inception.errors import UsageError
from inception.serving.errors import ServingError
from inception.serving.repository import ModelSpec
from inception.serving.server import ModelServer, ServerThread

# Runs the CLI, then says whether TensorFlow was imported on the way.
PROBE = (
    "import sys; from inception.cli import main; rc = main(sys.argv[1:]); "
    "print('tensorflow imported:', 'tensorflow' in sys.modules); sys.exit(rc)"
)


@pytest.fixture
def taken():
    """A port that another socket listens on (127.0.0.1)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def stand_in_version(base, number=1, name="saved_model.pb"):
    """``base/<number>/<name>``, not a real SavedModel: loading it would need TensorFlow."""
    folder = base / str(number)
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"not a SavedModel")
    return base


@pytest.fixture
def no_serving(monkeypatch):
    """For ``main`` in this process: fails a test that gets as far as serving (instead of
    serving forever), and restores the log levels that the CLI raises."""

    async def serve(server):
        raise AssertionError("the server was started")

    monkeypatch.setattr(serve_cli, "serve", serve)
    names = ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# ---------------------------------------------------------------------------------- ports


@pytest.mark.parametrize("api, flag", [("REST", "--rest-port"), ("gRPC", "--port")])
def test_a_taken_port_is_refused_in_one_line_before_loading(tmp_path, taken, api, flag):
    base = stand_in_version(tmp_path / "m")
    ports = ["--rest-port", "0", "--port", "0", flag, str(taken)]  # the last one counts
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "serve", "--model-base-path", str(base)]
        + ["--host", "127.0.0.1", *ports],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    # one line and nothing else: no traceback, no model-loading log before it
    assert proc.stderr == (
        f"inception serve: error: {api} port {taken} is in use ({flag}); stop what holds it or "
        "choose another port\n"
    )
    assert proc.stdout == "tensorflow imported: False\n"


def test_one_port_for_both_apis_is_refused(capsys, no_serving):
    argv = ["serve", "--model-base-path", ".", "--rest_api_port", "8999", "--grpc-port", "8999"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "inception serve: error: --rest_api_port and --grpc-port are both 8999; give each its "
        "own port\n"
    )


@pytest.mark.parametrize("api", ["REST", "gRPC"])
def test_a_port_taken_after_the_check_is_one_line_too(tmp_path, taken, api):
    """The server binds after loading; a port taken meanwhile gives the same one line (and
    what had started is released)."""
    (tmp_path / "m").mkdir()  # no version: nothing to load
    rest, grpc_port = (taken, 0) if api == "REST" else (0, taken)
    args = serve_cli.parse_serve_args(
        ["--model-base-path", str(tmp_path / "m"), "--host", "127.0.0.1", "--rest-port", str(rest)]
        + ["--port", str(grpc_port)]
    )
    server = serve_cli.build_server(args)  # check_ports skipped: free then, taken now
    with pytest.raises(UsageError) as refused:
        asyncio.run(asyncio.wait_for(server.start(), 300))
    flag = "--rest-port" if api == "REST" else "--port"
    assert str(refused.value) == (
        f"{api} port {taken} is in use ({flag}); stop what holds it or choose another port"
    )
    if api == "gRPC":  # the REST port it had bound is free again
        with socket.socket() as again:
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", server.rest_port))
            again.listen()


# ------------------------------------------------------------------------------ base paths


@pytest.mark.parametrize("source", ["--model-base-path", "--model-config-file"])
def test_a_version_folder_as_base_path_is_refused_naming_its_parent(
    tmp_path, capsys, no_serving, source
):
    if source == "--model-base-path":
        given = str(stand_in_version(tmp_path / "shapes") / "1")
        argv = [source, given]
        what, found = f"--model-base-path {given}", "saved_model.pb"
    else:
        stand_in_version(tmp_path / "shapes", name="saved_model.pbtxt")
        config = tmp_path / "models.config"
        config.write_text(
            'model_config_list { config { name: "shapes" base_path: "shapes/1" '
            'model_platform: "tensorflow" } }'
        )
        argv = [source, str(config)]
        what = f"model 'shapes' of {config}: base_path {tmp_path / 'shapes' / '1'}"
        found = "saved_model.pbtxt"
    assert main(["serve", *argv, "--rest-port", "0", "--grpc-port", "0"]) == 2
    assert capsys.readouterr().err == (
        f"inception serve: error: {what} is a SavedModel (it holds {found}), not a model base "
        f"path: use its parent {tmp_path / 'shapes'}, whose numbered sub-folders (1, 2, ...) "
        "are the versions.\n"
    )


def test_the_server_refuses_a_version_folder_as_base_path(tmp_path):
    base = stand_in_version(tmp_path / "shapes") / "1"
    server = ModelServer([ModelSpec("shapes", str(base))], rest_port=0, grpc_port=0)
    with pytest.raises(UsageError, match=re.escape(f"use its parent {tmp_path / 'shapes'},")):
        asyncio.run(server.start())


def _layout(tmp_path, kind):
    """A base path with no version to serve, the policy, and why."""
    base = tmp_path / "m"
    base.mkdir()
    if kind == "empty":
        return base, "all", f"no numeric version folders (1, 2, ...) under {base} (it is empty)"
    if kind == "not numbered":
        (base / "v1").mkdir()
        (base / "saved_model.bak").write_bytes(b"")
        return (
            base,
            "all",
            f"no numeric version folders (1, 2, ...) under {base} (it holds saved_model.bak, v1)",
        )
    if kind == "a SavedModel":
        (base / "saved_model.pb").write_bytes(b"")
        why = f"the model base path {base} is a SavedModel (it holds saved_model.pb), not a "
        why += f"model base path: use its parent {tmp_path}, whose numbered sub-folders (1, 2, "
        return base, "all", why + "...) are the versions."
    stand_in_version(base, 2)  # "specific": the config asks for version 3
    return base, "specific", f"the version policy asks for versions [3]; {base} has [2]"


@pytest.mark.parametrize("kind", ["empty", "not numbered", "a SavedModel", "specific"])
def test_a_model_with_no_version_says_why(tmp_path, caplog, kind):
    base, policy, why = _layout(tmp_path, kind)
    server = ModelServer([ModelSpec("m", str(base), policy, versions=(3,))])
    model = server.models["m"]
    with caplog.at_level(logging.WARNING, logger="inception.serving"):
        model.refresh()
        model.refresh()  # said once, not at every poll
    assert [r.getMessage() for r in caplog.records] == [f"model m has no version to serve: {why}"]
    assert server.healthy() == (
        False,
        {"status": "unavailable", "models": {"m": []}, "errors": {"m": why}},
    )
    with pytest.raises(ServingError, match=re.escape(f"no version is available ({why}).")):
        model.resolve()


def test_a_version_folder_without_saved_model_says_so(tmp_path, caplog):
    base = tmp_path / "m"
    (base / "1").mkdir(parents=True)
    server = ModelServer([ModelSpec("m", str(base))])
    with caplog.at_level(logging.WARNING, logger="inception.serving"):
        server.models["m"].refresh()
    error = f"FileNotFoundError: version folder {base / '1'} has no saved_model.pb"
    assert [r.getMessage() for r in caplog.records] == [
        f"model m version 1 failed to load: {error}",
        f"model m has no version to serve: every version failed to load (version 1: {error})",
    ]
    ok, body = server.healthy()
    assert not ok and body["status"] == "unavailable" and error in body["errors"]["m"]


def test_the_heap_is_settled_after_a_load_and_handed_back_at_stop(tmp_path):
    """Once versions are loaded (or failed) the collector stops walking what they hold
    (``gc.freeze``); a stopped server hands it all back, so that a process that goes on
    (tests, notebooks) collects as before."""
    base = stand_in_version(tmp_path / "m")
    server = ModelServer([ModelSpec("m", str(base))], host="127.0.0.1", rest_port=0, grpc_port=0)
    gc.unfreeze()
    with ServerThread(server):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
