"""The choices of ``--strategy`` and ``--mixed-precision``, known without Keras (the command line
checks its arguments before TensorFlow loads)."""

TF_STRATEGIES = ("tpu", "mirrored", "multi_worker")
JAX_STRATEGIES = ("data_parallel",)
STRATEGIES = ("auto", "one_device", *TF_STRATEGIES, *JAX_STRATEGIES)
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
