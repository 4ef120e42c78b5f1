"""CLI subcommands: one module each, discovered by collector.cli.

A command module defines `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed args, returns an exit code) via `set_defaults`.
"""
