"""``inception.optimize_for_inference``: folded graphs compute what the originals compute, lower
precisions stay close, ``auto`` reports its choice, and the results save, load and run on JAX.

"Relative" error here is ``max|optimised - original| / max|original|`` over a whole batch of
logits (or feature maps). Every model gets random weights and random, non-trivial BatchNorm
statistics (moving mean ~ N(0, 0.5), moving variance ~ U(0.5, 2), beta ~ N(0, 0.2), and
gamma ~ U(0.5, 1.5) where the layer has one), so a fold that ignored any of them would fail.
Weights are seeded, so every run sees the same networks.

The bfloat16 bounds leave room over what random networks show (Inception-ResNets, 4 seeds each):
relative error at most 1.5% (bound 3%) with the same top-1 on at least 14 of 16 images (bound
14); against the image-dependent part of the logits, at most 7% (bound 10%) and 13 of 16 images
(bound 12). Random networks have far smaller top-1 margins than trained ones.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import randomize_batchnorm
from keras import layers

import inception
from inception.optimize import optimization_report
from inception.optimize import precision as prec

SIZE = 75
NETWORKS = [
    ("inception_v4", "slim"),
    ("inception_v4", "paper"),
    ("inception_resnet_v1", "paper"),
    ("inception_resnet_v2", "slim"),
    ("inception_resnet_v2", "paper"),
]
RESIDUAL = [n for n in NETWORKS if n[0].startswith("inception_resnet")]
FLOAT32_TOL = 1e-5
LOW_TOL = 3e-2  # bfloat16 against float32 logits
CENTRED_TOL = 1e-1  # the same, against the image-dependent part of the logits only


@pytest.fixture(autouse=True)
def seeded():
    """The same random weights on every run."""
    keras.utils.set_random_seed(0)


def varied_images(n=16, size=SIZE, seed=1):
    """Noise, gradients, stripes and smooth blobs in [-1, 1]: inputs that differ in kind."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            img = rng.uniform(-1, 1, (size, size, 3))
        elif kind == 1:
            img = np.stack([xx * rng.uniform(-2, 2) + yy * rng.uniform(-2, 2)] * 3, -1)
        elif kind == 2:
            freq = rng.uniform(2, 12, 3)
            img = np.stack([np.sin(2 * np.pi * f * (xx + yy * c)) for f, c in zip(freq, freq)], -1)
        else:
            low = rng.normal(0, 1, (5, 5, 3))
            img = np.kron(low, np.ones((size // 5 + 1, size // 5 + 1, 1)))[:size, :size]
        images.append(np.clip(img, -1, 1))
    return np.asarray(images, "float32")


def relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def layer_types(model) -> set[str]:
    return {type(layer).__name__ for layer in model.layers}


class Network:
    """One network at 75 px with random BatchNorm statistics, its float32 logits on a varied
    batch, and its optimised copies' logits (computed once per precision)."""

    def __init__(self, name, variant):
        self.name = name
        keras.utils.set_random_seed(0)
        self.model = randomize_batchnorm(inception.build(
            name, variant=variant, weights=None, input_shape=(SIZE, SIZE, 3), classes=100,
            classifier_activation=None,
        ))  # fmt: skip
        self.x = varied_images()
        self.reference = np.asarray(self.model(self.x, training=False))
        self.optimised = {}

    def logits(self, precision):
        if precision not in self.optimised:
            fast = inception.optimize_for_inference(self.model, precision)
            self.optimised[precision] = fast, np.asarray(fast(self.x))
        return self.optimised[precision]


def ids(network):
    return "-".join(network)


@pytest.fixture(scope="module", params=NETWORKS, ids=ids)
def network(request):
    return Network(*request.param)


def test_folded_float32_equals_original(network):
    model = network.model
    fast, y = network.logits("float32")
    report = optimization_report(fast)
    n_bn = sum(isinstance(layer, layers.BatchNormalization) for layer in model.layers)
    n_scales = sum(isinstance(layer, layers.Rescaling) for layer in model.layers)
    assert n_bn > 100 and len(report.folded) == n_bn + n_scales  # each ConvBN, each 1x1 + scale
    assert not {"BatchNormalization", "Rescaling"} & layer_types(fast)
    assert fast.get_layer(report.folded[0]).use_bias
    assert relative(y, network.reference) <= FLOAT32_TOL
    assert inception.model_info(fast) == inception.model_info(model)
    assert [t.shape for t in fast.inputs] == [t.shape for t in model.inputs]
    assert fast.count_params() < model.count_params()  # moving statistics are gone


def test_bfloat16_close_with_same_top1(network):
    fast, y = network.logits("bfloat16")
    reference = network.reference
    assert y.dtype == np.float32 and fast.inputs[0].dtype == "float32"
    assert relative(y, reference) <= LOW_TOL
    same = np.mean(y.argmax(-1) == reference.argmax(-1))
    assert same >= 14 / 16, f"top-1 agrees on {same:.0%} of the batch"
    conv = fast.get_layer(optimization_report(fast).folded[0])
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "bfloat16"
    assert fast.get_layer("Logits.Logits").compute_dtype == "float32"  # output layer


@pytest.mark.parametrize("network", RESIDUAL, indirect=True, ids=ids)
def test_bfloat16_keeps_the_image_dependent_logits(network):
    """A stricter view of the same outputs: subtract the batch's mean logit vector (as if the
    classifier's bias were centred on the batch), so top-1 depends on the image, and compare
    there. With random weights only the Inception-ResNets keep enough of the image to their
    logits for this to mean something: in a random Inception-v4 with the statistics above the
    image-dependent part is about 1% of the logits (its top-1 is one class for every image), and
    with statistics matched to its activations it is chaotic (a 2**-9 change of the input moves
    its logits by 9%), so neither says anything about trained weights."""
    _, y = network.logits("bfloat16")
    mean = network.reference.mean(0)
    reference, y = network.reference - mean, y - mean
    assert len(set(reference.argmax(-1))) >= 6  # top-1 varies from image to image
    assert relative(y, reference) <= CENTRED_TOL
    same = np.mean(y.argmax(-1) == reference.argmax(-1))
    assert same >= 12 / 16, f"top-1 agrees on {same:.0%} of the batch"


def test_aux_head_and_features_only():
    """List outputs (the auxiliary head) and dict outputs (``features_only``) keep their form."""
    shape = (107, 107, 3)  # the auxiliary head's minimum
    aux = inception.build("inception_resnet_v1", weights=None, classes=7, input_shape=shape,
                          aux_logits=True)  # fmt: skip
    randomize_batchnorm(aux)
    x = varied_images(2, size=107)
    want, got = aux(x), inception.optimize_for_inference(aux)(x)
    assert isinstance(got, list) and len(got) == 2
    for a, b in zip(got, want):
        assert relative(a, b) <= FLOAT32_TOL
    backbone = inception.build("inception_resnet_v1", weights=None, features_only=True,
                               input_shape=shape)  # fmt: skip
    randomize_batchnorm(backbone)
    want = backbone(x)
    fast = inception.optimize_for_inference(backbone, "bfloat16")
    got = fast(x)
    assert list(got) == list(want)  # the end points, in order
    for key in want:
        assert got[key].dtype == "float32"
        assert relative(got[key], want[key]) <= LOW_TOL, key


# --- a generic graph: what folds and what does not -----------------------------------------


def generic_model():
    """Every case the fold must get right, in one functional model."""
    inner_in = keras.Input((None, None, 6))
    inner = layers.Conv2D(6, 1, use_bias=False, name="inner_conv")(inner_in)
    inner = layers.BatchNormalization(name="inner_bn")(inner)
    nested = keras.Model(inner_in, layers.ReLU(name="inner_relu")(inner), name="nested")

    x_in = keras.Input((16, 16, 3), name="x")
    a = layers.Conv2D(8, 3, use_bias=False, name="a")(x_in)  # -> BN with gamma: folds
    a = layers.BatchNormalization(scale=True, name="a_bn")(a)
    a = layers.ReLU(name="a_relu")(a)
    b = layers.Conv2D(8, 1, use_bias=True, name="b")(a)  # conv bias, BN without beta: folds
    b = layers.BatchNormalization(center=False, scale=True, name="b_bn")(b)
    c = layers.Conv2D(8, 1, name="c")(b)  # output used twice: stays
    c_bn = layers.BatchNormalization(name="c_bn")(c)
    c = layers.Add(name="c_add")([c_bn, c])
    d = layers.Conv2D(6, 3, strides=2, name="d")(c)  # BN + Rescaling (residual scale): folds
    d = layers.BatchNormalization(name="d_bn")(d)
    d = layers.Rescaling(0.3, offset=0.1, name="d_scale")(d)
    e = layers.Conv2D(6, 1, activation="relu", name="e")(d)  # activation before BN: stays
    e = layers.BatchNormalization(name="e_bn")(e)
    shared = layers.Conv2D(6, 1, use_bias=False, name="shared")  # called twice: stays
    s1 = layers.BatchNormalization(name="s1_bn")(shared(e))
    s2 = layers.BatchNormalization(name="s2_bn")(shared(s1))
    f = nested(s2)
    g = layers.Conv2D(4, 1, name="g")(f)  # its BN's output is a model output: folds, float32
    g = layers.BatchNormalization(name="g_bn")(g)
    pooled = layers.GlobalAveragePooling2D(name="pool")(g)
    probs = layers.Dense(5, activation="softmax", name="probs")(pooled)
    model = keras.Model(x_in, {"map": g, "probs": probs}, name="generic")
    return randomize_batchnorm(model)


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_generic_graph_folds_exactly_the_foldable_pairs(precision):
    model = generic_model()
    x = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    fast = inception.optimize_for_inference(model, precision)
    assert sorted(optimization_report(fast).folded) == ["a", "b", "d", "g", "inner_conv"]
    kept = {layer.name for layer in fast.layers if isinstance(layer, layers.BatchNormalization)}
    assert kept == {"c_bn", "e_bn", "s1_bn", "s2_bn"}
    assert "d_scale" not in {layer.name for layer in fast.layers}
    nested = fast.get_layer("nested")
    assert "BatchNormalization" not in layer_types(nested)
    want, got = model(x), fast(x)
    assert set(got) == {"map", "probs"}
    tol = FLOAT32_TOL if precision == "float32" else LOW_TOL
    for key in want:
        assert got[key].dtype == "float32"
        assert relative(got[key], want[key]) <= tol, key
    low = "float32" if precision == "float32" else precision
    assert fast.get_layer("a").compute_dtype == low
    assert fast.get_layer("c_bn").compute_dtype == low
    assert fast.get_layer("c_bn").moving_variance.dtype == "float32"  # statistics stay float32
    assert fast.get_layer("g").compute_dtype == "float32"  # produces an output
    assert fast.get_layer("probs").compute_dtype == "float32"  # softmax
    np.testing.assert_allclose(np.sum(got["probs"], -1), 1.0, atol=1e-6)


def test_fold_batchnorm_false_keeps_batchnorm():
    model = generic_model()
    fast = inception.optimize_for_inference(model, "bfloat16", fold_batchnorm=False)
    assert optimization_report(fast).folded == ()
    assert sum(isinstance(layer, layers.BatchNormalization) for layer in fast.layers) == 8
    x = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    got = fast(x)
    assert got["map"].dtype == "float32" and got["probs"].dtype == "float32"
    assert relative(got["map"], model(x)["map"]) <= LOW_TOL


def test_sequential_model():
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        layers.Conv2D(4, 3, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
        layers.GlobalAveragePooling2D(), layers.Dense(3),
    ], name="seq")  # fmt: skip
    randomize_batchnorm(model)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 12, 12, 3)).astype("float32")
    fast = inception.optimize_for_inference(model)
    assert len(optimization_report(fast).folded) == 1
    assert relative(fast(x), model(x)) <= FLOAT32_TOL


# --- Ensemble and .keras files ----------------------------------------------------------------


def test_ensemble_optimised_member_by_member(tmp_path):
    members = [  # the second one needs a resize: the ensemble's input is the larger size
        randomize_batchnorm(inception.build("inception_resnet_v1", weights=None, classes=10,
                                            input_shape=(size, size, 3)), seed=size)
        for size in (SIZE + 8, SIZE)
    ]  # fmt: skip
    ensemble = inception.Ensemble(members, weights=[1, 3])
    x = np.random.default_rng(0).uniform(0, 255, (4, SIZE + 8, SIZE + 8, 3)).astype("float32")
    # training=False: called without it, Keras runs the members after a Resizing layer in
    # training mode (Resizing's call defaults to training=True).
    want = np.asarray(ensemble(x, training=False))
    for precision, tol in (("float32", FLOAT32_TOL), ("bfloat16", LOW_TOL)):
        fast = inception.optimize_for_inference(ensemble, precision)
        assert isinstance(fast, inception.Ensemble)
        assert fast.member_weights == ensemble.member_weights
        assert fast.label_indices == ensemble.label_indices
        assert fast.member_preprocessing == ensemble.member_preprocessing
        assert fast.image_size == ensemble.image_size
        assert inception.model_info(fast) == inception.model_info(ensemble)
        assert all("BatchNormalization" not in layer_types(m) for m in fast.members)
        assert relative(fast(x, training=False), want) <= tol
    path = tmp_path / "ensemble.keras"
    fast.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, inception.Ensemble)
    np.testing.assert_array_equal(
        np.asarray(loaded(x, training=False)), np.asarray(fast(x, training=False))
    )


PLAIN_KERAS = textwrap.dedent(
    """
    import sys, keras, numpy as np
    model = keras.saving.load_model(sys.argv[1])
    assert "inception" not in sys.modules, "the file needed the inception package"
    np.save(sys.argv[3], np.asarray(model(np.load(sys.argv[2]))))
    print(model.get_layer("Conv2d_1a_3x3").compute_dtype)
    """
)


def test_keras_file_round_trip(tmp_path):
    """A .keras-loaded model optimises like the original; the optimised model saves and loads
    with plain Keras in a process that never imports inception."""
    model = randomize_batchnorm(inception.build("inception_resnet_v1", weights=None, classes=10,
                                                input_shape=(SIZE, SIZE, 3)))  # fmt: skip
    x = varied_images(4)
    source = inception.save_model(model, tmp_path / "model.keras")
    from_file = inception.load_model(source)
    fast = inception.optimize_for_inference(from_file, "bfloat16")
    assert inception.model_info(fast) == inception.model_info(model)
    np.testing.assert_array_equal(
        np.asarray(fast(x)), np.asarray(inception.optimize_for_inference(model, "bfloat16")(x))
    )
    path = inception.save_model(fast, tmp_path / "fast.keras")
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, path, str(tmp_path / "x.npy"), str(tmp_path / "y")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.asarray(fast(x)))
    assert proc.stdout.strip().splitlines()[-1] == "bfloat16"


# --- precision choice and errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "backend, device, flags, env, expected, says",
    [
        ("tensorflow", prec.Device("cpu"), {"fpu", "avx512_bf16"}, {}, "bfloat16", "avx512_bf16"),
        ("tensorflow", prec.Device("cpu"), {"amx_bf16", "avx512_bf16"}, {}, "bfloat16", "amx_bf16"),
        ("torch", prec.Device("cpu"), {"avx512_bf16"}, {}, "bfloat16", "avx512_bf16"),
        ("tensorflow", prec.Device("cpu"), {"avx2", "fma"}, {}, "float32", "no amx_bf16"),
        ("tensorflow", prec.Device("cpu"), set(), {}, "float32", "cannot read"),
        ("tensorflow", prec.Device("cpu"), {"avx512_bf16"}, {"TF_ENABLE_ONEDNN_OPTS": "0"},
         "float32", "TF_ENABLE_ONEDNN_OPTS=0"),
        ("jax", prec.Device("cpu"), {"avx512_bf16"}, {}, "float32", "no faster bfloat16"),
        ("tensorflow", prec.Device("tpu", "TPU v4"), set(), {}, "bfloat16", "TPU"),
        ("jax", prec.Device("gpu", "H100", (9, 0)), set(), {}, "bfloat16", "9.0"),
        ("tensorflow", prec.Device("gpu", "T4", (7, 5)), set(), {}, "float16", "7.5"),
        ("torch", prec.Device("gpu", "P4", (6, 1)), set(), {}, "float32", "no tensor cores"),
        ("tensorflow", prec.Device("gpu", "GPU"), set(), {}, "float16", "unknown"),
    ],
)  # fmt: skip
def test_auto_precision_per_device(monkeypatch, backend, device, flags, env, expected, says):
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    monkeypatch.setattr(prec, "detect_device", lambda b: device)
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    choice = prec.choose_precision("auto")
    assert choice.precision == expected
    assert says in choice.reason


def test_training_speaks_the_same_precision_vocabulary():
    """Training's auto: bfloat16 where every device computes in it, float16 on other GPUs,
    float32 on CPUs (even with avx512_bf16, unlike inference); the former mixed_* names map."""
    from inception.precisions import KERAS_POLICIES, OLD_PRECISIONS, PRECISIONS

    assert prec.PRECISIONS is PRECISIONS
    ampere, turing = prec.Device("gpu", "A100", (8, 0)), prec.Device("gpu", "T4", (7, 5))
    assert prec.bfloat16_hardware([prec.Device("tpu", "TPU")]) and prec.bfloat16_hardware([ampere])
    assert not prec.bfloat16_hardware([ampere, turing])
    assert not prec.bfloat16_hardware([prec.Device("gpu", "GPU")])  # capability unknown
    assert not prec.bfloat16_hardware([prec.Device("cpu")])
    cases = [("cpu", False, "float32"), ("gpu", False, "float16"), ("gpu", True, "bfloat16"),
             ("tpu", True, "bfloat16")]  # fmt: skip
    for accelerator, bf16, expected in cases:
        assert prec.training_precision("auto", accelerator, bf16) == expected
    for old, new in OLD_PRECISIONS.items():
        assert prec.training_precision(old, "cpu", False) == new
        assert prec.keras_policy(new) == KERAS_POLICIES[new] == old
    assert prec.keras_policy("float32") == "float32"
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        prec.training_precision("fp8", "cpu", False)
    assert prec.detect_devices(keras.backend.backend())[0] == prec.detect_device(
        keras.backend.backend()
    )


def test_auto_reports_its_choice(caplog):
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3), layers.ReLU()])
    with caplog.at_level("INFO", logger="inception.optimize"):
        fast = inception.optimize_for_inference(model, "auto")
    report = optimization_report(fast)
    assert report.requested == "auto"
    assert report.precision == prec.choose_precision("auto").precision
    assert report.precision in ("float32", "bfloat16", "float16") and report.reason
    assert f"precision {report.precision} ({report.reason})" in caplog.text
    assert fast.layers[1].compute_dtype == report.precision  # the conv
    explicit = optimization_report(inception.optimize_for_inference(model, "float32"))
    assert (explicit.precision, explicit.reason) == ("float32", "requested")


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert prec.cpu_flags(str(x86)) == {"fpu", "avx512f", "avx512_bf16"}
    assert "bf16" in prec.cpu_flags(str(arm))
    assert prec.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_bad_arguments_give_one_line_errors():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="choose one of auto, float32, bfloat16, float16") as bad:
        inception.optimize_for_inference(model, "fp8")
    assert "'fp8'" in str(bad.value) and "\n" not in str(bad.value)
    with pytest.raises(TypeError, match="needs a Keras model.*got ndarray") as bad:
        inception.optimize_for_inference(np.zeros(3))
    assert "\n" not in str(bad.value)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed Keras model.*functional API"):
        inception.optimize_for_inference(Subclassed())
    with pytest.raises(ValueError, match="start it with keras.Input"):
        inception.optimize_for_inference(keras.Sequential([layers.Dense(2)]))


def test_float16_overflow_is_refused():
    x_in = keras.Input((4, 4, 1))
    y = layers.BatchNormalization(name="bn")(layers.Conv2D(1, 1, use_bias=False, name="c")(x_in))
    model = keras.Model(x_in, layers.ReLU()(y))
    model.get_layer("c").kernel.assign(np.full((1, 1, 1, 1), 1000.0))
    model.get_layer("bn").moving_variance.assign([1e-4])
    model.get_layer("bn").epsilon = 0.0
    with pytest.raises(ValueError, match="beyond float16.*bfloat16"):
        inception.optimize_for_inference(model, "float16")
    assert optimization_report(inception.optimize_for_inference(model, "bfloat16")).folded == ("c",)


# --- JAX -------------------------------------------------------------------------------------

JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys, keras, numpy as np, inception
    from inception.optimize import choose_precision, optimization_report
    choice = choose_precision("auto")
    out = {"backend": keras.backend.backend(), "tf": "tensorflow" in sys.modules,
           "auto": choice.precision, "reason": choice.reason}
    model = inception.build("inception_resnet_v1", weights=None, input_shape=(75, 75, 3),
                            classes=10, classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            layer.beta.assign(rng.normal(0, 0.2, n))
    x = rng.uniform(-1, 1, (4, 75, 75, 3)).astype("float32")
    foldable = sum(isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Rescaling))
                   for layer in model.layers)
    want = np.asarray(model(x))
    for precision in ("float32", "bfloat16"):
        fast = inception.optimize_for_inference(model, precision)
        y = np.asarray(fast(x))
        out[precision] = [float(np.abs(y - want).max() / np.abs(want).max()), str(y.dtype),
                          len(optimization_report(fast).folded) == foldable]
    fast.save(sys.argv[1])
    again = keras.saving.load_model(sys.argv[1])
    out["reloaded_equal"] = bool(np.array_equal(np.asarray(again(x)), y))
    print(json.dumps(out))
    """
)


@pytest.mark.slow  # Keras builds and clones the graph slowly under JAX: about a minute
def test_jax_backend(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "jax.keras")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax" and not out["tf"], out  # auto did not import TensorFlow
    assert out["auto"] == "float32" and "jax" in out["reason"]
    assert out["float32"][0] <= FLOAT32_TOL and out["float32"][1:] == ["float32", True]
    assert out["bfloat16"][0] <= LOW_TOL and out["bfloat16"][1:] == ["float32", True]
    assert out["reloaded_equal"]
