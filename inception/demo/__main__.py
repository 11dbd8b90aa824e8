"""``python -m inception.demo`` (``make demo``): the demo, end to end."""

from inception.demo import main

raise SystemExit(main())
