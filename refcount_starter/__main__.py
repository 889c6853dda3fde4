"""``python -m refcount_starter``: see ``refcount_starter.cli``."""

from .cli import main

raise SystemExit(main())
