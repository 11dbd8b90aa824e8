"""The choices of ``--strategy``, known without Keras (the command line checks its arguments
before TensorFlow loads). Those of ``--precision`` are ``inception.precisions.PRECISIONS``."""

TF_STRATEGIES = ("tpu", "mirrored", "multi_worker")
JAX_STRATEGIES = ("data_parallel",)
STRATEGIES = ("auto", "one_device", *TF_STRATEGIES, *JAX_STRATEGIES)
