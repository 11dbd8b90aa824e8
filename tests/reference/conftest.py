"""Reference-framework parity tests: need the ``reference`` extra (torch, torchvision, timm).

``make test-reference`` installs it and runs this folder; the default ``make test`` does not
collect it (``--ignore=tests/reference`` in pytest's addopts).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
