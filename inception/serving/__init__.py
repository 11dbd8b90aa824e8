"""Serving: SavedModels for TensorFlow Serving (``inception export``) and a TF-Serving-compatible
REST + gRPC endpoint with dynamic batching (``inception serve``).

Kept import-free on purpose: ``inception.serving.export`` needs the model code and TensorFlow,
``inception.serving.server`` only TensorFlow and the exported artifact; neither loads the other.
"""

SIGNATURES = ("serving_default", "predict_pixels", "classify")
