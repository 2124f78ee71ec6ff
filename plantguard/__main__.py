"""``python -m plantguard`` is the ``plantguard`` command."""

from .cli import main

raise SystemExit(main())
