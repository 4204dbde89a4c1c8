"""Command-line options of a benchmark, from keyword defaults: ``--name`` takes the default's type
(a ``False`` default makes a flag). Imported by the benchmark scripts beside it; running it does nothing."""

from __future__ import annotations

import argparse


def parse_options(doc: str, **defaults) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in defaults.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"default {value}")
    return parser.parse_args()
