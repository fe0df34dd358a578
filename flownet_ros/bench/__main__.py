"""``python -m flownet_ros.bench <name>``: dispatch to the benchmark module ``flownet_ros.bench.<name>``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback

import flownet_ros.bench as _pkg


def discover():
    """{name: module or the import error text} for every public module of flownet_ros.bench."""
    found = {}
    for info in sorted(pkgutil.iter_modules(_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{_pkg.__name__}.{info.name}")
        except Exception:  # one broken benchmark must not hide the others
            found[info.name] = traceback.format_exc(limit=3)
            continue
        if hasattr(module, "add_arguments") and hasattr(module, "run"):
            found[info.name] = module
    return found


def _broken(error_text):
    def run(_args):
        print(f"this benchmark failed to import:\n{error_text}", file=sys.stderr)
        return 2
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flownet_ros.bench", description=_pkg.__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="<benchmark>")
    sub.required = True
    for name, module in discover().items():
        if isinstance(module, str):
            p = sub.add_parser(name, help="(failed to import)")
            p.set_defaults(_run=_broken(module))
            continue
        doc = (module.__doc__ or name).strip()
        p = sub.add_parser(name, help=doc.split("\n")[0], description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
