"""``ws.check()`` and ``ws.gc()``: a workspace's invariants, verified and repaired.

The invariants: every catalog row that names a blob has it; a sample of blobs still hashes to
its key; the stored rows obey the rules of ``mleval.catalog.rules`` (rows written before a rule
existed, or around the catalog, may not); no write left a temporary behind; every blob is
referred to by a row. ``check`` only reads; ``gc`` removes what no row refers to and reports it:
stray blobs and temporaries older than an hour (a younger one may belong to an upload under way,
whose blobs are stored before its rows).
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from mleval.storage.blobs import STALE_TEMPORARY_S


@dataclass(frozen=True)
class Finding:
    """One broken invariant: what, how many, a few examples, and how to repair it."""

    kind: str
    count: int
    examples: tuple[str, ...]
    repair: str


@dataclass
class CheckReport:
    """What ``ws.check()`` found: ``findings`` (empty when the workspace is whole) and what it looked at."""

    workspace: str
    findings: list[Finding] = field(default_factory=list)
    looked_at: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        head = (f"workspace {self.workspace}: " + ("whole" if self.ok else f"{len(self.findings)} problem(s)")
                + " (" + ", ".join(f"{n} {what}" for what, n in self.looked_at.items()) + ")")
        lines = [head]
        for f in self.findings:
            lines.append(f"- {f.kind}: {f.count}; e.g. {', '.join(f.examples[:3])}")
            lines.append(f"  repair: {f.repair}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CheckReport({self.workspace!r}, ok={self.ok}, findings={[f.kind for f in self.findings]})"

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><td>{escape(f.kind)}</td><td>{f.count}</td><td>{escape(', '.join(f.examples[:3]))}</td>"
                       f"<td>{escape(f.repair)}</td></tr>" for f in self.findings)
        table = (f"<table><tr><th>problem</th><th>count</th><th>examples</th><th>repair</th></tr>{rows}</table>"
                 if rows else "")
        return f"<pre>{escape(str(self).splitlines()[0])}</pre>{table}"


@dataclass(frozen=True)
class GcReport:
    """What ``ws.gc()`` removed: blob keys no row referred to, and stale temporaries."""

    stray_blobs: tuple[str, ...]
    temporaries: tuple[str, ...]
    freed_bytes: int

    def __repr__(self) -> str:
        return (f"GcReport({len(self.stray_blobs)} stray blobs, {len(self.temporaries)} stale temporaries removed, "
                f"{self.freed_bytes / 1e6:.1f} MB freed)")


def check_workspace(catalog: Any, blobs: Any, *, name: str, hash_sample: int = 100, seed: int = 0) -> CheckReport:
    """Verify the invariants of the module docstring; read-only."""
    report = CheckReport(name)
    references = catalog.blob_references()
    found, temporaries = blobs.scan()
    stored = {key for key, _ in found}
    referenced = {key for keys_of in references.values() for key in keys_of}
    report.looked_at = {"blobs": len(stored), **{f"{what} rows": len(k) for what, k in references.items()}}
    for what, keys_of in references.items():
        missing = sorted({k for k in keys_of if k not in stored})
        if missing:
            report.findings.append(Finding(
                f"{what} whose blob is missing", len(missing), tuple(missing[:5]),
                f"upload the files again (a re-upload restores an image's blob), or delete those {what} rows"))
    sample = random.Random(seed).sample(sorted(stored), min(hash_sample, len(stored)))
    damaged = [k for k in sample if hashlib.sha256(blobs.read_bytes(k)).hexdigest() != _digest_of(k)]
    report.looked_at["blobs hashed"] = len(sample)
    if damaged:
        report.findings.append(Finding("blobs whose bytes no longer match their hash", len(damaged), tuple(damaged[:5]),
                                       "the disk or someone changed them: restore them from a backup, or delete "
                                       "the rows that use them and upload the files again"))
    for table, broken in catalog.rule_violations().items():
        for rule, count, example in broken:
            report.findings.append(Finding(f"{table} rows breaking [{rule}]", count, (example,),
                                           "edit or delete those rows through the API (ws.annotations.update, "
                                           "ws.annotations.delete, ...); new writes are refused by the rule"))
    stale = [path for path, modified in temporaries if time.time() - modified > STALE_TEMPORARY_S]
    if stale:
        report.findings.append(Finding("temporaries left by writes that never finished", len(stale),
                                       tuple(stale[:5]), "ws.gc() removes them"))
    stray = sorted(stored - referenced)
    if stray:
        report.findings.append(Finding("blobs no row refers to", len(stray), tuple(stray[:5]),
                                       "ws.gc() removes them (they are what deleted images and models left)"))
    return report


def collect_garbage(catalog: Any, blobs: Any) -> GcReport:
    """Remove the blobs no row refers to and the temporaries, both when older than an hour; report them."""
    found, temporaries = blobs.scan()  # listed before the references: a blob stored since is not seen
    referenced = {key for keys_of in catalog.blob_references().values() for key in keys_of}
    now = time.time()
    stray = sorted(key for key, modified in found if key not in referenced and now - modified > STALE_TEMPORARY_S)
    freed = 0
    for key in stray:
        local = blobs.local_path(key)
        if local is not None:
            import os

            freed += os.path.getsize(local)
        blobs.delete(key)
    stale = [path for path, modified in temporaries if now - modified > STALE_TEMPORARY_S]
    for path in stale:
        blobs.delete_path(path)
    return GcReport(tuple(stray), tuple(stale), freed)


def _digest_of(key: str) -> str:
    """The sha256 a blob key names: ``sha256/ab/cdef...`` -> ``abcdef...``."""
    return "".join(key.split("/")[1:])
