"""The application layer: from what a user names (a model, weights, a file, a list of them) to
built models. ``builders``: the public builders and ``inception.build`` (an architecture of
``inception.models`` with the weights of ``inception.weights``); ``resolve``: the model spec of
the commands and of the Python API (``inception.api``: evaluate, predict, export, convert);
``zoo``: the table of ``inception models``.

It sits above ``models``, ``weights`` and ``optimize`` and below ``evaluation``, ``serving`` and
``training``, which take the models it resolves."""
