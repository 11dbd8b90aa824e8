"""The precision vocabulary of training and inference, known without Keras (the command line
checks ``--precision`` before TensorFlow loads). ``inception.optimize.precision`` resolves
``"auto"`` on the device the backend computes on."""

PRECISIONS = ("auto", "float32", "bfloat16", "float16")

# The Keras mixed-precision policy a training run sets for each precision: variables stay
# float32, the layers compute in the lower type.
KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}

# Training's former names (Keras' policy names), still accepted with a DeprecationWarning.
OLD_PRECISIONS = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
