"""preprocess_input and offline decode_predictions for the 1000- and 1001-class layouts."""

import numpy as np
import pytest

import inception


def test_preprocess_input_range():
    x = np.array([[0, 127.5, 255]], dtype="uint8")
    np.testing.assert_allclose(inception.preprocess_input(x), [[-1.0, 0.0, 1.0]], atol=1e-2)
    y = inception.preprocess_input(np.full((1, 4, 4, 3), 255.0))
    assert y.dtype == np.float32 and np.all(y == 1.0)


def test_decode_predictions_1000_and_1001():
    preds = np.zeros((2, 1000), "float32")
    preds[0, 281] = 0.9  # n02123045 tabby
    preds[0, 1] = 0.05  # goldfish
    preds[1, 0] = 1.0  # tench
    top = inception.decode_predictions(preds, top=2)
    assert top[0][0] == ("n02123045", "tabby", pytest.approx(0.9))
    assert top[0][1][:2] == ("n01443537", "goldfish")
    assert top[1][0][:2] == ("n01440764", "tench")
    slim = np.zeros((1, 1001), "float32")
    slim[0, 282] = 0.7  # the same class, shifted by slim's background at index 0
    slim[0, 0] = 0.2
    decoded = inception.decode_predictions(slim, top=2)[0]
    assert decoded[0][:2] == ("n02123045", "tabby")
    assert decoded[1][:2] == ("background", "background")


def test_class_names_and_bad_shapes():
    names = inception.class_names(1000)
    assert len(names) == 1000 and len(set(inception.class_names(1001))) >= 999
    assert inception.class_names(1001)[1:] == names
    with pytest.raises(ValueError, match="1000"):
        inception.decode_predictions(np.zeros((1, 10)))
    with pytest.raises(ValueError, match="1000 or 1001"):
        inception.class_names(10)
