"""``python -m inception.cli`` is the ``inception`` command."""

import sys

from inception.cli import main

sys.exit(main())
