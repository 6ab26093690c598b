"""Subcommands contributed by engine modules; each module has `register(subparsers)`."""
