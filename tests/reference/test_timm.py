"""Parity with the real timm models (needs the ``reference`` extra: torch, torchvision, timm).

Random timm weights and BN statistics (BN scales != 1, some negative) -> safetensors ->
``convert_into`` -> our logits equal timm's to float32 rounding. Not part of the default run:
CI runs this module after ``pip install -e .[reference]``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from weights_fixtures import SPECS  # noqa: E402

import inception  # noqa: E402
from inception.weights import convert_into  # noqa: E402


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v2"])
def test_converted_logits_equal_timm(name, tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        for module in ref.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
                module.weight.uniform_(-1.5, 1.5)
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    # the hand-written key/shape fixture used by the default run is timm's exact state dict
    assert {k: tuple(v.shape) for k, v in state.items()} == SPECS[name]().timm
    path = str(tmp_path / f"{name}.safetensors")
    save_file(state, path)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 99, 99, 3)).astype("float32")
    with torch.no_grad():
        expected = ref(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    ours = inception.build(name, input_shape=(99, 99, 3), classifier_activation=None)
    convert_into(ours, name, path)
    logits = ours.predict(x, verbose=0)
    assert np.abs(expected).max() > 0.05
    np.testing.assert_allclose(logits, expected, atol=1e-5 * max(1.0, np.abs(expected).max()))
