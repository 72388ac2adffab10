"""`python -m tailnet_llm_gateway ...`: see tailnet_llm_gateway/cli.py."""

from .cli import main

raise SystemExit(main())
