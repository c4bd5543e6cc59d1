"""`derain models ...`: list, describe, download, import, verify and remove model weights.

A model name that resolves to nothing is a usage error (exit 2) in every sub-command, checked for
all names before anything is downloaded or removed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import UsageError
from ._errors import EXIT_FAILED
from ._options import QuietOpt, VerboseOpt, resolve_model
from ._output import Output, size_text

if TYPE_CHECKING:
    from ..models import ResolvedModel


def _model_record(m: ResolvedModel) -> dict[str, Any]:
    """One model as `derain models list --json` shows it."""
    from ..models import default_model_name
    from ..weights import installed

    src = m.source
    return {
        "name": m.name,
        "architecture": m.architecture.title,
        "arch": m.arch,
        "variant": m.variant,
        "trained_on": m.entry.trained_on,
        "size": src.size,
        "installed": installed(m),
        "source": src.kind,
        "sha256": src.sha256,
        "url": src.url or src.page,
        "default_variant": m.is_default_variant,
        "default_model": m.arch == default_model_name().split(":")[0] and m.is_default_variant,
    }


def list_cmd(as_json: bool = typer.Option(False, "--json", help="One JSON array on stdout.")) -> None:
    """All registered models: name, architecture, training set, size, whether installed, and where
    the weights come from."""
    from .. import models

    records = [_model_record(m) for m in models.REGISTRY.models()]
    with_weights = {m.arch for m in models.REGISTRY.models()}
    for arch in models.REGISTRY.architectures().values():
        if arch.name not in with_weights:  # e.g. PLNLIN: no published weights, train your own
            records.append({"name": arch.name, "architecture": arch.title, "arch": arch.name, "variant": None,
                            "trained_on": "no weights published: train your own", "size": None,
                            "installed": False, "source": "none", "sha256": None, "url": arch.url or None,
                            "default_variant": False, "default_model": False})
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("architecture", no_wrap=True)
    table.add_column("trained on", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("installed", no_wrap=True)
    table.add_column("source", no_wrap=True)
    for r in records:
        name = r["name"] + (" (default)" if r["default_model"] else "")
        table.add_row(name, r["architecture"], r["trained_on"] or "-", size_text(r["size"]),
                      "yes" if r["installed"] else "no", r["source"])
    Console(highlight=False, width=max(120, shutil.get_terminal_size((120, 24)).columns)).print(table)
    typer.echo("An architecture name alone (e.g. `prenet`) means its default variant, listed first; "
               "`derain models info NAME` tells more.")


def info_cmd(name: str = typer.Argument(..., metavar="NAME[:VARIANT]", help="A model, e.g. prenet:rain100h.")) -> None:
    """Everything the registry knows about a model."""
    from .. import models
    from ..weights import cached_path

    m = resolve_model(name)
    a, src = m.architecture, m.source
    others = [e.name for e in models.REGISTRY.models() if e.arch == m.arch and e.name != m.name]
    rows = [
        ("name", m.name + (" (default variant)" if m.is_default_variant else "")),
        ("architecture", f"{a.title} — {a.description}" if a.description else a.title),
        ("paper", m.paper or "-"),
        ("code", a.url or "-"),
        ("trained on", m.entry.trained_on or "-"),
        ("licence", m.licence),
        ("input contract", m.contract.describe()),
        ("suggested tile", str(m.contract.tile) if m.contract.tile else "auto (from free memory)"),
        ("weights source", src.kind),
        ("file name", src.filename),
    ]
    if src.url:
        rows.append(("url", src.url))
    if src.page:
        rows.append(("download page", src.page))
    if src.password:
        rows.append(("password", src.password))
    if src.sha256:
        rows.append(("sha256", src.sha256))
    if src.size:
        rows.append(("size", size_text(src.size)))
    path = cached_path(m)
    rows.append(("installed", str(path) if path else "no"))
    if m.entry.description:
        rows.append(("notes", m.entry.description))
    if others:
        rows.append(("other variants", ", ".join(others)))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")


def download_cmd(
    names: list[str] = typer.Argument(..., metavar="NAME", help="Models to fetch, e.g. prenet brn:rain100l."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
    quiet: bool = QuietOpt,
) -> None:
    """Fetch weights into the cache (for manual sources: print how to get them)."""
    from ..errors import DerainError
    from ..models import download_weights as download
    from ..weights import ManualDownloadRequired

    out = Output(quiet)
    resolved = [resolve_model(name) for name in names]
    failed = 0
    for m in resolved:
        try:
            path = download(m, progress=not quiet, force=force)
            out.info(f"{m.name}: {path}")
        except ManualDownloadRequired as exc:
            failed += 1
            typer.echo(str(exc), err=True)  # several lines: where to get the file and how to import it
        except DerainError as exc:  # one model failing does not stop the others
            failed += 1
            out.error(str(exc))
    if failed:
        raise typer.Exit(EXIT_FAILED)


def import_cmd(
    name: str = typer.Argument(..., metavar="NAME[:VARIANT]", help="The model the weights belong to."),
    file: Path = typer.Argument(..., metavar="FILE", help="The checkpoint file (for MSPFN: epoch50.index)."),
    force: bool = typer.Option(False, "--force", help="Import even if the sha256 differs from the known release."),
    verbose: bool = VerboseOpt,
) -> None:
    """Copy a weights file you downloaded yourself into the cache, after checking that it loads
    strictly into the model's architecture (and matches the known sha256, if any)."""
    from ..models import import_weights

    if not file.exists():
        raise UsageError(f"{file}: no such file")
    m = resolve_model(name)
    path = import_weights(m, file, force=force)
    Output(verbose=verbose).info(f"{m.name}: imported {file} -> {path}")


def verify_cmd() -> None:
    """Re-hash every cached weights file against its recorded sha256."""
    from ..weights import verify_cache

    results = verify_cache()
    if not results:
        typer.echo("the cache holds no weights")
        return
    bad = 0
    for r in results:
        if r.ok:
            typer.echo(f"ok      {r.name}  {r.path}")
        else:
            bad += 1
            typer.echo(f"FAILED  {r.name}  {r.path}: {r.problem}")
    if bad:
        Output().error(f"{bad} file(s) failed verification; `derain models rm NAME` then download again")
        raise typer.Exit(EXIT_FAILED)


def rm_cmd(names: list[str] = typer.Argument(..., metavar="NAME", help="Models whose weights to delete.")) -> None:
    """Delete a model's cached weights."""
    from ..weights import remove

    out = Output()
    for m in [resolve_model(name) for name in names]:
        removed = remove(m)
        out.info(f"{m.name}: removed {len(removed)} file(s)" if removed else f"{m.name}: not in the cache")


def path_cmd(
    name: str | None = typer.Argument(None, metavar="NAME", help="A model (default: print the folder)."),
) -> None:
    """Print the cache folder, or the cached file of a model."""
    from ..weights import cache_dir, cached_path

    if name is None:
        typer.echo(str(cache_dir()))
        return
    m = resolve_model(name)
    found = cached_path(m)
    if found is None:
        Output().error(f"{m.name} is not installed (run `derain models download {m.name}`)")
        raise typer.Exit(EXIT_FAILED)
    typer.echo(str(found))
