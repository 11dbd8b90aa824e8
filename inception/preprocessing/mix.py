"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) of a training batch, in TensorFlow
ops for a ``tf.data`` map (so on any Keras backend): the images mixed with a shuffled copy of
the batch and the labels turned into soft targets mixed alike. ``inception finetune`` runs them
when its recipe's ``mixup_alpha`` or ``cutmix_alpha`` is above 0."""

from __future__ import annotations


def mix_batch(images, labels, classes: int, *, mixup_alpha=0.0, cutmix_alpha=0.0,
              switch_prob=0.5, seed=0):  # fmt: skip
    """MixUp or CutMix of a batch ``images [B, H, W, C]``, ``labels [B]`` (integers) with a
    shuffled copy of itself, in TensorFlow ops (for a ``tf.data`` map, on any Keras backend):
    one mixing weight ``lam`` and one permutation per batch; with both alphas > 0, CutMix with
    probability ``switch_prob``, else MixUp. Returns the images and the soft targets
    ``lam * one_hot(y) + (1 - lam) * one_hot(y[perm])`` (``[B, classes]`` float32).

    The random draws are stateless, keyed by ``seed`` and a fingerprint of the batch: the same
    batch is mixed the same way whatever the order in which parallel maps run, and after a
    resume."""
    import tensorflow as tf

    dtype = images.dtype
    images = tf.cast(images, tf.float32)
    sample = tf.reshape(images[:, ::8, ::8, :], [1, -1])
    key = tf.bitcast(tf.fingerprint(sample), tf.int64)[0]
    seeds = tf.random.experimental.stateless_split(
        tf.stack([tf.constant(seed, tf.int64), key]), num=4
    )
    perm = tf.argsort(tf.random.stateless_uniform([tf.shape(images)[0]], seeds[0]))
    shuffled = tf.gather(images, perm)

    def mixup():
        lam = _beta(mixup_alpha, seeds[1])
        return lam * images + (1.0 - lam) * shuffled, lam

    def cutmix():
        return _cutmix(images, shuffled, _beta(cutmix_alpha, seeds[1]), seeds[2])

    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = tf.random.stateless_uniform([], seeds[3]) < switch_prob
        images, lam = tf.cond(use_cutmix, cutmix, mixup)
    elif cutmix_alpha > 0:
        images, lam = cutmix()
    elif mixup_alpha > 0:
        images, lam = mixup()
    else:
        lam = tf.constant(1.0)
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), classes, dtype=tf.float32)
    targets = lam * one_hot + (1.0 - lam) * tf.gather(one_hot, perm)
    return tf.cast(images, dtype), targets


def _beta(alpha: float, seed):
    """A draw of ``Beta(alpha, alpha)`` (two Gamma draws, in float64 so a small ``alpha``
    does not underflow to 0/0), as float32."""
    import tensorflow as tf

    gammas = tf.random.stateless_gamma([2], seed, alpha=float(alpha), dtype=tf.float64)
    total = tf.reduce_sum(gammas)
    lam = tf.where(total > 0, gammas[0] / tf.maximum(total, 1e-300), 0.5)
    return tf.cast(lam, tf.float32)


def _cutmix(images, shuffled, lam, seed):
    """``images`` with a rectangle of ``shuffled`` of about ``1 - lam`` of their area (centre
    uniform, clipped at the borders, as timm), and the share of ``images`` left: the exact
    share of pixels not pasted over."""
    import tensorflow as tf

    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.round(ratio * tf.cast(height, tf.float32)), tf.int32)
    cut_w = tf.cast(tf.round(ratio * tf.cast(width, tf.float32)), tf.int32)
    centre = tf.random.stateless_uniform([2], seed, maxval=1.0)
    cy = tf.cast(centre[0] * tf.cast(height, tf.float32), tf.int32)
    cx = tf.cast(centre[1] * tf.cast(width, tf.float32), tf.int32)
    y0, y1 = (
        tf.clip_by_value(cy - cut_h // 2, 0, height),
        tf.clip_by_value(cy + cut_h // 2, 0, height),
    )
    x0, x1 = (
        tf.clip_by_value(cx - cut_w // 2, 0, width),
        tf.clip_by_value(cx + cut_w // 2, 0, width),
    )
    rows, cols = tf.range(height), tf.range(width)
    inside = ((rows >= y0) & (rows < y1))[:, None] & ((cols >= x0) & (cols < x1))[None, :]
    mixed = tf.where(inside[None, :, :, None], shuffled, images)
    pasted = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(height * width, tf.float32)
    return mixed, 1.0 - pasted
