"""`python -m components ...`: see components/cli.py."""

from .cli import main

raise SystemExit(main())
