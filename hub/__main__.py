"""``python -m hub``: the command line (``hub.cli``)."""

from hub.cli import main

raise SystemExit(main())
