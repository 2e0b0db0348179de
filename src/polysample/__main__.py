"""``python -m polysample``: the ``polysample`` command (see :mod:`polysample.cli`)."""

from .cli import main

raise SystemExit(main())
