"""Verified downloads from a local HTTP server on 127.0.0.1 (never the internet): success for each
source format, hash mismatch, truncated transfer, 404 and offline, each leaving nothing cached; and
``inception.InceptionV4(weights="imagenet")`` end to end (download, verify, convert, cache)."""

import json
import os
import socket
import tarfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from weights_fixtures import (  # noqa: E402, F401
    LocalServer,
    file_hash,
    slim_checkpoint,
    write_slim_checkpoint,
)

import inception  # noqa: E402
from inception.weights import (  # noqa: E402
    DownloadError,
    WeightsError,
    fetch,
    get_entry,
    load_weights,
)
from inception.weights.sources import read_source  # noqa: E402


def make_tar(path, prefix, arcdir, mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        for f in os.listdir(os.path.dirname(prefix)):
            if f.startswith(os.path.basename(prefix)):
                tar.add(os.path.join(os.path.dirname(prefix), f), arcname=f"{arcdir}/{f}")


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    """One small, real checkpoint per source format: url path -> (bytes, format, keys)."""
    root = tmp_path_factory.mktemp("payloads")
    prefix = write_slim_checkpoint(
        str(root / "ckpt" / "tiny.ckpt"), {"InceptionV4/Conv2d_1a_3x3/weights": np.ones((3, 3))}
    )
    make_tar(root / "tiny.tar.gz", prefix, "tiny")
    save_file({"features.0.conv.weight": np.ones((2, 3), np.float32)}, str(root / "t.safetensors"))
    with h5py.File(root / "k.h5", "w") as f:
        f.attrs["layer_names"] = [b"predictions"]
        g = f.create_group("predictions")
        g.attrs["weight_names"] = [b"predictions/kernel:0"]
        g.create_dataset("predictions/kernel:0", data=np.ones((4, 2), np.float32))
    return {
        "/slim/tiny.tar.gz": ((root / "tiny.tar.gz").read_bytes(), "slim",
                              {"InceptionV4/Conv2d_1a_3x3/weights", "global_step"}),
        "/timm/model.safetensors": ((root / "t.safetensors").read_bytes(), "timm",
                                    {"features.0.conv.weight"}),
        "/keras/k.h5": ((root / "k.h5").read_bytes(), "keras", {"predictions/kernel"}),
    }  # fmt: skip


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def entry(name, url, file, fmt, hash_, **kw):
    return name, {"model": "inception_v4", "format": fmt, "url": url, "file": file,
                  "member": None, "hash": hash_, "license": "Apache-2.0", "num_classes": 1000,
                  "label_offset": 0, **kw}  # fmt: skip


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTION_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def use_manifest(tmp_path, monkeypatch, entries, defaults=None):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"entries": dict(entries), "defaults": defaults or {}}))
    monkeypatch.setenv("INCEPTION_MANIFEST", str(path))


def leftovers(home):
    return sorted(p.name for p in (home / "downloads").iterdir()) if home.exists() else []


def test_each_format_downloads_verifies_and_is_cached(
    payloads, home, tmp_path, monkeypatch, capsys
):
    algos = {"slim": "md5", "timm": "sha256", "keras": "md5"}
    with LocalServer({k: v[0] for k, v in payloads.items()}) as server:
        use_manifest(tmp_path, monkeypatch, [
            entry(f"{fmt}:x", server.url + url, os.path.basename(url), fmt,
                  f"{algos[fmt]}:{file_hash_bytes(body, algos[fmt])}")
            for url, (body, fmt, _) in payloads.items()
        ])  # fmt: skip
        for url, (body, fmt, keys) in payloads.items():
            path = fetch(get_entry(f"{fmt}:x"))
            assert path == home / "downloads" / os.path.basename(url)
            assert path.read_bytes() == body
            assert set(read_source(str(path), fmt).tensors) == keys
        n = len(server.requests)
        for _, (_, fmt, _) in payloads.items():
            fetch(get_entry(f"{fmt}:x"))  # cached and re-verified: no new request
        assert len(server.requests) == n == 3
    assert leftovers(home) == ["k.h5", "model.safetensors", "tiny.tar.gz"]
    out, err = capsys.readouterr()  # not a terminal: plain lines, no live bar
    assert err.count("downloading http://127.0.0.1") == 3 and "downloaded k.h5: 0 MB in" in err
    assert "\x1b[" not in out + err


def file_hash_bytes(body, algorithm):
    import hashlib

    return hashlib.new(algorithm, body).hexdigest()


def test_hash_mismatch_is_rejected_and_nothing_cached(payloads, home, tmp_path, monkeypatch):
    body = payloads["/timm/model.safetensors"][0]
    with LocalServer({"/m.safetensors": body}) as server:
        use_manifest(tmp_path, monkeypatch, [
            entry("timm:x", server.url + "/m.safetensors", "m.safetensors", "timm",
                  "sha256:" + "0" * 64)
        ])  # fmt: skip
        with pytest.raises(DownloadError) as err:
            fetch(get_entry("timm:x"))
    msg = str(err.value)
    assert "failed verification" in msg and f"received {len(body)} bytes" in msg
    assert "nothing was cached" in msg
    assert leftovers(home) == []


def test_truncated_transfer_is_rejected_and_nothing_cached(payloads, home, tmp_path, monkeypatch):
    body = payloads["/slim/tiny.tar.gz"][0]
    with LocalServer({"/a.tar.gz": body}, truncate={"/a.tar.gz"}) as server:
        use_manifest(tmp_path, monkeypatch, [
            entry("slim:x", server.url + "/a.tar.gz", "a.tar.gz", "slim", "md5:" + "1" * 32)
        ])  # fmt: skip
        with pytest.raises(DownloadError, match=r"transfer was truncated \(retrieval incomplete"):
            fetch(get_entry("slim:x"))
    assert leftovers(home) == []


def test_404_names_the_url(home, tmp_path, monkeypatch):
    with LocalServer({}) as server:
        url = server.url + "/missing.h5"
        use_manifest(tmp_path, monkeypatch, [entry("keras:x", url, "missing.h5", "keras", None)])
        with pytest.raises(DownloadError, match=f"from {url}: the server answered HTTP 404"):
            fetch(get_entry("keras:x"))
    assert leftovers(home) == []


def test_offline_error_names_url_file_and_manual_location(home, tmp_path, monkeypatch):
    url = closed_port_url() + "/w.safetensors"
    use_manifest(tmp_path, monkeypatch, [
        entry("timm:x", url, "w.safetensors", "timm", "sha256:" + "a" * 64)
    ])  # fmt: skip
    with pytest.raises(DownloadError) as err:
        fetch(get_entry("timm:x"))
    msg = str(err.value)
    assert f"could not download timm:x from {url}" in msg and "is this machine offline?" in msg
    assert f"Expected file: w.safetensors (sha256 {'a' * 64})" in msg
    assert f"put it at {home / 'downloads' / 'w.safetensors'}" in msg
    assert leftovers(home) == []


def test_manual_copy_is_used_offline_and_a_wrong_one_refused(payloads, home, tmp_path, monkeypatch):
    body = payloads["/timm/model.safetensors"][0]
    url = closed_port_url() + "/w.safetensors"
    use_manifest(tmp_path, monkeypatch, [
        entry("timm:x", url, "w.safetensors", "timm", "sha256:" + file_hash_bytes(body, "sha256"))
    ])  # fmt: skip
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "w.safetensors").write_bytes(body)
    assert fetch(get_entry("timm:x")).read_bytes() == body
    (home / "downloads" / "w.safetensors").write_bytes(body[:-1] + b"!")
    with pytest.raises(DownloadError, match="does not match the sha256 .* Delete it"):
        fetch(get_entry("timm:x"))


def test_unhashed_entry_records_sha256_and_detects_later_changes(payloads, home, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    body = payloads["/keras/k.h5"][0]
    with LocalServer({"/k.h5": body}) as server:
        use_manifest(
            tmp_path, monkeypatch, [entry("keras:x", server.url + "/k.h5", "k.h5", "keras", None)]
        )
        path = fetch(get_entry("keras:x"))
    recorded = (home / "downloads" / "k.h5.sha256").read_text().split()[0]
    assert recorded == file_hash(path)
    path.write_bytes(body + b"tampered")
    with pytest.raises(DownloadError, match="does not match the sha256"):
        fetch(get_entry("keras:x"))


def test_hand_placed_unhashed_checkpoint_is_recorded_and_a_corrupt_one_named(
    home, tmp_path, monkeypatch
):
    """A file put into downloads/ by hand for an entry without a published hash: its sha256 is
    recorded at first use; a corrupt one gets one line saying which file to delete."""
    use_manifest(tmp_path, monkeypatch, [
        entry("slim:x", "http://127.0.0.1:9/none.tar.gz", "x.tar.gz", "slim", None)
    ], defaults={"inception_resnet_v1": "slim:x"})  # fmt: skip
    placed = home / "downloads" / "x.tar.gz"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"not a tar archive at all")
    assert fetch(get_entry("slim:x")) == placed
    assert (home / "downloads" / "x.tar.gz.sha256").read_text().split()[0] == file_hash(placed)
    model = inception.build("inception_resnet_v1", input_shape=(75, 75, 3))
    monkeypatch.setattr("inception.weights.manifest.resolve", lambda *a: get_entry("slim:x"))
    monkeypatch.setattr("inception.weights.loading.resolve", lambda *a: get_entry("slim:x"))
    monkeypatch.setattr("inception.weights.loading._check_entry", lambda *a: None)
    with pytest.raises(DownloadError) as err:
        load_weights(model, "inception_resnet_v1", "imagenet")
    message = str(err.value)
    assert str(placed) in message and "Delete it" in message and "\n" not in message


def test_imagenet_weights_end_to_end(home, tmp_path, monkeypatch):
    """InceptionV4(weights="imagenet"): manifest default -> download the slim .tar.gz -> verify
    md5 -> convert (1001 -> 1000 classes) -> cache .weights.h5; the next build loads the cache
    without any request."""
    prefix, tensors = slim_checkpoint("inception_v4")
    # Uncompressed (gzip of 170 MB of random floats takes long); tarfile reads both alike.
    make_tar(tmp_path / "v4.tar", prefix, "inception_v4", mode="w")
    body = (tmp_path / "v4.tar").read_bytes()
    with LocalServer({"/v4.tar": body}) as server:
        use_manifest(tmp_path, monkeypatch, [
            entry("slim:v4", server.url + "/v4.tar", "v4.tar", "slim",
                  "md5:" + file_hash_bytes(body, "md5"), num_classes=1001, label_offset=1,
                  aux_logits=True)
        ], defaults={"inception_v4": "slim:v4"})  # fmt: skip
        model = inception.InceptionV4(
            weights="imagenet", input_shape=(75, 75, 3), classifier_activation=None
        )
        assert len(server.requests) == 1
        converted = list((home / "converted").glob("slim--v4-*.weights.h5"))
        assert len(converted) == 1
        logits = model.get_layer("Logits.Logits").weights[0]
        np.testing.assert_array_equal(
            logits.numpy(), tensors["InceptionV4/Logits/Logits/weights"][:, 1:]
        )
        x = np.random.default_rng(0).uniform(-1, 1, (2, 75, 75, 3)).astype("float32")
        before = model.predict(x, verbose=0)
        logits.assign(np.zeros(logits.shape))
        load_weights(model, "inception_v4", "imagenet")  # from the cache: no new request
        assert len(server.requests) == 1
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    with pytest.raises(WeightsError, match="classifies 1001 ImageNet classes: build with "
                       "classes=1000 or 1001, or with include_top=False"):  # fmt: skip
        load_weights(model, "inception_v4", "imagenet", classes=10)


def test_resnet_v1_has_no_imagenet_checkpoint():
    with pytest.raises(WeightsError, match="Inception-ResNet-v1 has no public ImageNet checkpoint"):
        inception.InceptionResNetV1(weights="imagenet", input_shape=(75, 75, 3))


def test_bad_weights_arguments_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.weights.h5' does not exist"):
        load_weights(None, "inception_v4", str(tmp_path / "nothing.weights.h5"))
    with pytest.raises(WeightsError, match="unknown pretrained weights 'timm:nope'"):
        load_weights(None, "inception_v4", "timm:nope")
    with pytest.raises(WeightsError, match="are for inception_resnet_v2, not inception_v4"):
        load_weights(None, "inception_v4", "keras:inception_resnet_v2")
    with pytest.raises(WeightsError, match="variant='slim'"):
        load_weights(None, "inception_v4", "imagenet", variant="paper")
    with pytest.raises(WeightsError, match="no auxiliary head: build with aux_logits=False, or "
                       "use slim:inception_resnet_v2_2016_08_30"):  # fmt: skip
        load_weights(None, "inception_resnet_v2", "timm:inception_resnet_v2.tf_in1k",
                     aux_logits=True)  # fmt: skip
