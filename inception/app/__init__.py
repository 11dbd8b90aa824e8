"""The application layer: from what a user names (a model, weights, a file, a list of them) to
built models, and the operations on them that the commands and the Python API share."""
