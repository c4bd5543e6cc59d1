"""`derain models ...` in process: list, info, download, import, verify, path, rm."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.tinynet import WEIGHTS, TinyNet

UNKNOWN = "error: unknown model 'nosuch'; run `derain models list` to see all models"


def test_list_json_records(derain):
    r = derain("models", "list", "--json")
    assert r.code == 0, r.stderr
    records = {m["name"]: m for m in json.loads(r.stdout)}
    keys = {"name", "architecture", "arch", "variant", "trained_on", "size", "installed", "source", "sha256",
            "url", "default_variant", "default_model"}
    assert all(set(rec) == keys for rec in records.values())
    assert {rec["source"] for rec in records.values()} <= {"url", "manual", "bundled", "file", "none"}
    assert records["testnet:random"]["installed"] is True and records["testnet:random"]["source"] == "file"
    assert records["testnet:manual"]["installed"] is False and records["testnet:manual"]["source"] == "manual"
    assert [name for name, rec in records.items() if rec["default_model"]] == ["derainlite:v3"]
    assert records["plnlin"]["source"] == "none"  # an architecture without published weights is listed too


def test_list_table(derain):
    r = derain("models", "list")
    assert r.code == 0
    header = r.out_lines[0].split()
    assert header == ["name", "architecture", "trained", "on", "size", "installed", "source"]
    assert any(line.startswith("derainlite:v3 (default) ") for line in r.out_lines)
    assert r.out_lines[-1].startswith("An architecture name alone (e.g. `prenet`) means its default variant")


def info_rows(stdout: str) -> dict[str, str]:
    """`key  value` lines -> {key: value}."""
    return {line.split("  ")[0]: line.split("  ", 1)[1].strip() for line in stdout.splitlines()}


def test_info(derain):
    r = derain("models", "info", "testnet")
    assert r.code == 0
    rows = info_rows(r.stdout)
    assert rows["name"] == "testnet:random (default variant)"
    assert rows["input contract"].startswith("RGB")
    assert rows["installed"] == str(WEIGHTS) and rows["other variants"] == "testnet:manual"
    rows = info_rows(derain("models", "info", "testnet:manual").stdout)
    assert rows["installed"] == "no" and rows["password"] == "abcd"


@pytest.mark.parametrize("args", [("info", "nosuch"), ("path", "nosuch"), ("rm", "nosuch"),
                                  ("download", "testnet", "nosuch"), ("import", "nosuch", WEIGHTS)])
def test_an_unknown_model_is_a_usage_error(derain, args):
    r = derain("models", *args)
    assert (r.code, r.err_lines, r.stdout) == (2, [UNKNOWN], "")


def test_download_a_manual_source_says_how_to_get_it(derain):
    r = derain("models", "download", "testnet:manual")
    assert r.code == 1
    assert "https://example.org/testnet" in r.stderr and "abcd" in r.stderr
    assert "derain models import testnet:manual" in r.stderr


def test_download_a_local_file_source(derain):
    r = derain("models", "download", "testnet:random")
    assert r.code == 0, r.stderr
    name, path = r.stdout.strip().split(": ", 1)
    assert name == "testnet:random" and Path(path).read_bytes() == WEIGHTS.read_bytes()


def test_import_verify_path_rm(derain, tmp_path, _isolated_cache):
    """A file imported for a model is cached, verified, found by `path`, and removed by `rm`."""
    torch.manual_seed(99)  # differently-seeded weights of the same architecture: they load strictly
    own = tmp_path / "my-testnet.pt"
    torch.save({"net": TinyNet().state_dict(), "epoch": 3}, own)
    r = derain("models", "path", "testnet:manual")
    assert (r.code, r.err_lines) == (1, ["error: testnet:manual is not installed "
                                         "(run `derain models download testnet:manual`)"])
    r = derain("models", "import", "testnet:manual", own)
    assert r.code == 0, r.stderr
    r = derain("models", "path", "testnet:manual")
    assert r.code == 0
    cached = r.stdout.strip()
    assert cached.startswith(str(_isolated_cache))
    assert derain("models", "import", "testnet:manual", own).stdout == f"testnet:manual: imported {own} -> {cached}\n"
    r = derain("models", "verify")
    assert r.code == 0 and r.out_lines == [f"ok      testnet:manual  {cached}"]
    with open(cached, "r+b") as fh:  # corrupt the cached copy: verify notices
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    r = derain("models", "verify")
    assert r.code == 1 and r.out_lines[0].startswith(f"FAILED  testnet:manual  {cached}: ")
    assert r.err_lines == ["error: 1 file(s) failed verification; `derain models rm NAME` then download again"]
    r = derain("models", "rm", "testnet:manual")
    assert r.code == 0 and re.fullmatch(r"testnet:manual: removed \d file\(s\)\n", r.stdout)
    assert not Path(cached).exists()
    r = derain("models", "rm", "testnet:manual")
    assert (r.code, r.stdout) == (0, "testnet:manual: not in the cache\n")
    r = derain("models", "verify")
    assert (r.code, r.stdout) == (0, "the cache holds no weights\n")
    assert derain("models", "path").stdout == f"{_isolated_cache}\n"


def test_import_refuses_the_wrong_architecture_and_a_missing_file(derain, tmp_path):
    bad = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, bad)
    r = derain("models", "import", "testnet:manual", bad)
    assert r.code == 1 and len(r.err_lines) == 1
    assert "conv.weight" in r.stderr or "head.weight" in r.stderr
    r = derain("models", "import", "testnet:manual", tmp_path / "missing.pt")
    assert (r.code, r.err_lines) == (2, [f"error: {tmp_path / 'missing.pt'}: no such file"])


def test_a_manual_model_without_weights_says_how_to_get_them(derain, tmp_path):
    from tests.cli.conftest import write_png

    src = write_png(tmp_path / "a.png")
    r = derain(src, "-m", "testnet:manual")
    assert r.code == 1
    assert "https://example.org/testnet" in r.stderr and "abcd" in r.stderr
    assert "derain models import testnet:manual" in r.stderr
    assert not (tmp_path / "a_derained.png").exists()
    shutil.copy(WEIGHTS, tmp_path / "w.pt")  # once imported, the same command works
    assert derain("models", "import", "testnet:manual", tmp_path / "w.pt").code == 0
    r = derain(src, "-m", "testnet:manual")
    assert r.code == 0, r.stderr
    assert (tmp_path / "a_derained.png").exists()
