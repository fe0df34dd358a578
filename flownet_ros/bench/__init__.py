"""Benchmarks: ``python -m flownet_ros.bench <name> [options]``.

Every public module of this package (name without a leading underscore) is a subcommand. It must
define ``add_arguments(parser)`` (argparse options) and ``run(args) -> int`` (exit status); the first
line of its docstring is the help text. Shared helpers (timing, tables, machine description) live in
:mod:`flownet_ros.bench._common`. Results belong in docs/benchmarks.md with the machine and command.
"""
