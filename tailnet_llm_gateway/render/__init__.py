"""Pure renderers: topology in, file text out. No Pulumi imports, no I/O, no secrets."""
