#!/usr/bin/env python3
"""Import layering of mleval, read from the code (nothing is imported or run). The project's copy of
the shared layer check (../shared/tools/layers.py), run by `make lint` and so by `make test` and CI.

    python tools/layers.py [REPO]      # default: the current folder

Prints the package-level import graph at run time (imports under ``if TYPE_CHECKING:`` are
left out; imports inside functions count: they run too), every cycle between packages, and
every cycle between files (type-only imports included: a module that needs another's type
depends on it; imports of a package's __init__ are left out), every import that breaks a rule
below, and every module outside mleval/catalog/ whose string literals hold SQL (the catalog is the one place that speaks SQL to DuckDB). Exits 1 when a
rule is broken, a cycle exists or SQL stands outside the catalog.

Packages: each folder under mleval/ is one (mleval/core, mleval/catalog, ...), each module at
mleval/'s root is one (mleval/workspace.py -> "mleval.workspace"), and widgets/ and
serve_apps/ are one each.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

# (importer prefix, imported prefix, why) - an import from the first to the second is refused.
RULES = [
    ("mleval.core", "mleval.", "core holds plain types: it imports no other mleval package"),
    ("mleval.storage", "mleval.catalog", "storage knows no catalog"),
    ("mleval.catalog", "mleval.jobs", "the catalog knows no Ray jobs"),
    ("mleval.catalog", "mleval.deploy", "the catalog knows no deployments"),
    ("mleval.formats", "mleval.catalog", "formats convert files, they do not query"),
    ("mleval.formats", "mleval.jobs", "formats need no Ray"),
    ("mleval.evaluation", "mleval.jobs", "metrics need no Ray"),
    ("mleval.jobs", "mleval.workspace", "jobs get a narrow context, not the facade"),
    ("mleval.deploy", "mleval.workspace", "deploy gets a narrow context, not the facade"),
    ("mleval.evaluation", "mleval.workspace", "evaluation gets a narrow context, not the facade"),
    ("mleval.models", "mleval.workspace", "models get a narrow context, not the facade"),
    ("mleval.deploy", "serve_apps", "deploy names the Serve app by import path; it does not import it"),
    ("mleval.", "widgets", "the library knows no screen"),
    ("serve_apps", "widgets", "endpoints know no notebook"),
]


SQL = re.compile(r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bCREATE\s+(TABLE|VIEW|INDEX)\b", re.I)


def package_of(path: Path, repo: Path) -> str | None:
    rel = path.relative_to(repo)
    parts = rel.parts
    if parts[0] in ("widgets", "serve_apps"):
        return parts[0]
    if parts[0] != "mleval":
        return None
    if len(parts) == 2:
        return "mleval" if parts[1] == "__init__.py" else "mleval." + parts[1][:-3]
    return "mleval." + parts[1]


# The folders widgets/ and serve_apps/ install under these import names (setup.py).
INSTALLED_AS = {"mleval_widgets": "widgets", "mleval_serve": "serve_apps"}


def canonical(module: str) -> str:
    """An import as the folder it names: ``mleval_serve.detector`` -> ``serve_apps.detector``."""
    head, _, rest = module.partition(".")
    head = INSTALLED_AS.get(head, head)
    return f"{head}.{rest}" if rest else head


def absolute(node: ast.ImportFrom, here: str | None) -> str | None:
    """The module an ``import from`` names; a relative one resolved from ``here`` (the importing
    module's dotted name)."""
    if node.level == 0:
        return canonical(node.module) if node.module else None
    if here is None:
        return None
    base = here.split(".")[: -node.level] if node.level else []
    return ".".join(base + ([node.module] if node.module else [])) or None


def runtime_imports(tree: ast.AST, here: str | None = None):
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for sub in ast.walk(child):
                        skip.add(id(sub))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield canonical(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom) and (module := absolute(node, here)):
            yield module, node.lineno


def all_imports(tree: ast.AST, here: str | None = None):
    """Every import, type-only ones included (a module that needs another's type depends on it)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield canonical(alias.name)
        elif isinstance(node, ast.ImportFrom) and (module := absolute(node, here)):
            yield module
            for alias in node.names:
                yield f"{module}.{alias.name}"


def dotted_path(path: Path, repo: Path) -> str:
    """``widgets/annotator.py`` -> ``widgets.annotator``, ``widgets/__init__.py`` -> ``widgets.__init__``:
    a relative import of level N starts from this name less its last N parts."""
    return ".".join(path.relative_to(repo).with_suffix("").parts)


def module_name(path: Path, repo: Path) -> str:
    parts = list(path.relative_to(repo).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sccs


def target_package(module: str, packages: set[str]) -> str | None:
    best = None
    for p in packages:
        if module == p or module.startswith(p + "."):
            if best is None or len(p) > len(best):
                best = p
    return best


def main() -> int:
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    files = [p for d in ("mleval", "widgets", "serve_apps") for p in (repo / d).rglob("*.py")]
    packages = {package_of(p, repo) for p in files} - {None}
    edges: dict[tuple[str, str], list[str]] = {}
    for path in files:
        src = package_of(path, repo)
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError as error:
            print(f"cannot parse {path}: {error}")
            return 1
        for module, line in runtime_imports(tree, dotted_path(path, repo)):
            dst = target_package(module, packages)
            if dst is None or dst == src or dst == "mleval":
                continue
            edges.setdefault((src, dst), []).append(f"{path.relative_to(repo)}:{line}")
    def matches(package: str, prefix: str) -> bool:
        if prefix.endswith("."):
            return package.startswith(prefix)
        return package == prefix or package.startswith(prefix + ".")

    broken = []
    for (src, dst), where in sorted(edges.items()):
        for a, b, why in RULES:
            if matches(src, a) and matches(dst, b):
                broken.append(f"{src} -> {dst} ({why}): {', '.join(where[:3])}{' ...' if len(where) > 3 else ''}")
    # cycles between packages (strongly connected components of size > 1)
    graph: dict[str, set[str]] = {}
    for src, dst in edges:
        graph.setdefault(src, set()).add(dst)
    sccs = strongly_connected(graph)
    # cycles between files, type-only imports included (a package package-level check cannot see)
    modules = {module_name(p, repo): p for p in files}
    file_graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        for imported in all_imports(ast.parse(path.read_text()), dotted_path(path, repo)):
            if imported in modules and imported != name and not modules[imported].name == "__init__.py":
                file_graph.setdefault(name, set()).add(imported)
    file_sccs = strongly_connected(file_graph)
    print(f"{len(packages)} packages, {len(edges)} package-to-package import edges at run time")
    for comp in sccs:
        inner = [f"{s} -> {d} ({edges[(s, d)][0]})" for s in comp for d in comp if (s, d) in edges]
        print(f"CYCLE of {len(comp)}: " + "; ".join(inner))
    for comp in file_sccs:
        print(f"FILE CYCLE of {len(comp)} (type-only imports included): {', '.join(comp[:8])}{' ...' if len(comp) > 8 else ''}")
    for line in broken:
        print("RULE BROKEN: " + line)
    sql_modules = []
    for path in files:
        if path.is_relative_to(repo / "mleval" / "catalog") or path == repo / "mleval" / "demo.py":
            continue  # the demo shows users the public ws.sql escape hatch
        lines = sorted({node.lineno for node in ast.walk(ast.parse(path.read_text()))
                        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)})
        if lines:
            sql_modules.append(f"{path.relative_to(repo)}:{','.join(map(str, lines[:5]))}")
    for line in sql_modules:
        print("SQL OUTSIDE THE CATALOG: " + line)
    failed = bool(sccs or file_sccs or broken or sql_modules)
    print("layers ok" if not failed else
          f"layers: {len(sccs)} package cycle(s), {len(file_sccs)} file cycle(s), {len(broken)} rule(s) broken, "
          f"SQL in {len(sql_modules)} module(s) outside mleval/catalog")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
