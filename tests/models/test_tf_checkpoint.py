"""The TensorFlow-free checkpoint reader: real TF Saver files, synthetic bundles and broken files."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from derain_cli.errors import WeightsError
from derain_cli.models.formats.tf_checkpoint import (
    _T0,
    checkpoint_prefix,
    crc32c,
    list_variables,
    masked_crc32c,
    read_tf_checkpoint,
)
from tests.conftest import shared_path

DATA = "epoch50.data-00000-of-00001"


@pytest.fixture(scope="module")
def tiny_tf() -> Path:
    return shared_path("reference", "mspfn", "tiny_tf")


@pytest.fixture
def tiny_copy(tiny_tf, tmp_path) -> Path:
    """A writable copy of the tiny checkpoint (index, data, checkpoint file)."""
    for name in ("epoch50.index", DATA, "checkpoint"):
        shutil.copyfile(tiny_tf / name, tmp_path / name)
    return tmp_path


def _one_line_error(excinfo, *needles: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


# -- CRC32C -----------------------------------------------------------------------------------


def _crc32c_bytewise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = int(_T0[(crc ^ byte) & 0xFF]) ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0


@pytest.mark.parametrize("n", [1, 3, 4, 255, 256, 1025, 4099, 70001])
def test_crc32c_lanes_match_bytewise(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert crc32c(data) == _crc32c_bytewise(data)


# -- the real tiny checkpoint written by TensorFlow ---------------------------------------------


@pytest.mark.parametrize("form", ["folder", "prefix", "index", "data"])
def test_list_variables_matches_tensorflow(tiny_tf, form):
    path = {"folder": tiny_tf, "prefix": tiny_tf / "epoch50", "index": tiny_tf / "epoch50.index",
            "data": tiny_tf / DATA}[form]
    info = json.loads((tiny_tf / "variables.json").read_text())
    expected = {v["tf_name"]: (v["dtype"], tuple(v["tf_shape"])) for v in info["variables"]}
    assert list_variables(path) == expected


def test_adam_checkpoint_lists_and_reads_its_extras(tiny_tf):
    folder = tiny_tf.parent / "tiny_tf_with_adam"
    listed = list_variables(folder)
    assert len(listed) == 420
    assert listed["MSPFN/global_step"] == ("int32", ())
    assert listed["generator/rnn1/weight/Adam_1"] == ("float32", (3, 3, 8, 3))
    values = read_tf_checkpoint(folder, ["MSPFN/global_step", "beta1_power"])
    assert values["MSPFN/global_step"].dtype == np.int32 and int(values["MSPFN/global_step"]) == 2
    assert float(values["beta1_power"]) == pytest.approx(0.729)


def test_values_equal_the_weights_tensorflow_saved(tiny_tf):
    """TF saved tiny.pt's weights (torch -> TF: permute(2, 3, 1, 0) for kernels): bit-exact."""
    tiny = torch.load(tiny_tf.parent / "tiny.pt", weights_only=True)["state_dict"]
    info = json.loads((tiny_tf / "variables.json").read_text())
    values = read_tf_checkpoint(tiny_tf / "epoch50.index")
    assert len(values) == len(info["variables"]) == 139
    for v in info["variables"]:
        want = tiny[v["torch_key"]]
        if v["kind"] != "vec":
            want = want.permute(2, 3, 1, 0)
        got = values[v["tf_name"]]
        assert got.dtype == np.float32
        assert np.array_equal(got, want.numpy()), v["tf_name"]


def test_names_limit_what_is_read(tiny_tf):
    got = read_tf_checkpoint(tiny_tf, ["generator/rnn1/alpha", "generator/no/such/variable"])
    assert list(got) == ["generator/rnn1/alpha"]


def test_folder_uses_the_checkpoint_file_base_name(tiny_copy):
    # Saved with an absolute Windows path; a second checkpoint in the folder must not be picked.
    shutil.copyfile(tiny_copy / "epoch50.index", tiny_copy / "epoch10.index")
    (tiny_copy / "checkpoint").write_text('model_checkpoint_path: "D:\\\\runs\\\\MSPFN\\\\epoch50"\n')
    assert checkpoint_prefix(tiny_copy) == tiny_copy / "epoch50"
    (tiny_copy / "checkpoint").unlink()
    with pytest.raises(WeightsError) as e:
        checkpoint_prefix(tiny_copy)
    _one_line_error(e, "several checkpoints", "epoch10.index", "epoch50.index")


def test_folder_without_checkpoint_file_uses_its_only_index(tiny_copy):
    (tiny_copy / "checkpoint").unlink()
    assert checkpoint_prefix(tiny_copy) == tiny_copy / "epoch50"


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(WeightsError) as e:
        checkpoint_prefix(tmp_path)
    _one_line_error(e, "no TensorFlow checkpoint", str(tmp_path))
    archive = tmp_path / "MSPFN.zip"
    archive.write_bytes(b"PK\x03\x04")
    with pytest.raises(WeightsError) as e:
        read_tf_checkpoint(archive)
    _one_line_error(e, "archive", "unpack")
    with pytest.raises(WeightsError) as e:
        read_tf_checkpoint(tmp_path / "epoch50")
    _one_line_error(e, "not a TensorFlow checkpoint", "epoch50.index")


# -- broken files -------------------------------------------------------------------------------


def test_missing_data_file(tiny_copy):
    (tiny_copy / DATA).unlink()
    assert len(list_variables(tiny_copy)) == 139  # the index alone still lists
    with pytest.raises(WeightsError) as e:
        read_tf_checkpoint(tiny_copy / "epoch50.index")
    _one_line_error(e, DATA, "missing", "beside epoch50.index")


def test_truncated_data_file(tiny_copy):
    data = tiny_copy / DATA
    data.write_bytes(data.read_bytes()[:100_000])
    with pytest.raises(WeightsError) as e:
        read_tf_checkpoint(tiny_copy)
    _one_line_error(e, DATA, "truncated")


def test_corrupt_data_byte_fails_the_checksum(tiny_copy):
    data = tiny_copy / DATA
    raw = bytearray(data.read_bytes())
    raw[200_000] ^= 0x40
    data.write_bytes(bytes(raw))
    with pytest.raises(WeightsError) as e:
        read_tf_checkpoint(tiny_copy)
    _one_line_error(e, DATA, "checksum mismatch in variable")


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda raw: raw[:-8] + b"\0" * 8, "bad magic number"),
        (lambda raw: raw[: len(raw) // 2], "bad magic number"),
        (lambda raw: raw[:20], "shorter than a table footer"),
        (lambda raw: raw[:100] + bytes([raw[100] ^ 1]) + raw[101:], "checksum mismatch in the table block"),
    ],
    ids=["magic", "truncated", "tiny", "flipped-byte"],
)
def test_corrupt_index(tiny_copy, damage, needle):
    index = tiny_copy / "epoch50.index"
    index.write_bytes(damage(index.read_bytes()))
    with pytest.raises(WeightsError) as e:
        list_variables(index)
    _one_line_error(e, "epoch50.index", needle)


# -- synthetic bundles: what the tiny checkpoint does not exercise ------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(dtype: int, shape, shard: int, offset: int, size: int, crc: int, sliced: bool) -> bytes:
    dims = b"".join(_field(2, b"\x08" + _varint(d)) for d in shape)
    msg = b"\x08" + _varint(dtype) + _field(2, dims)
    msg += (b"\x18" + _varint(shard) if shard else b"") + (b"\x20" + _varint(offset) if offset else b"")
    msg += b"\x28" + _varint(size) + b"\x35" + struct.pack("<I", crc)
    return msg + (_field(7, b"") if sliced else b"")


def _block(entries) -> bytes:
    """A table block with prefix-compressed keys and a single restart point."""
    out, previous = bytearray(), b""
    for key, value in entries:
        shared = 0
        while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
            shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    return bytes(out) + struct.pack("<II", 0, 1)


def _write_table(path: Path, entries, per_block: int, compression: int) -> None:
    out, index = bytearray(), []

    def put(block: bytes, kind: int) -> bytes:
        handle = _varint(len(out)) + _varint(len(block))
        out.extend(block + bytes([kind]) + struct.pack("<I", masked_crc32c(block + bytes([kind]))))
        return handle

    entries = sorted(entries)
    for i in range(0, len(entries), per_block):
        chunk = entries[i:i + per_block]
        index.append((chunk[-1][0], put(_block(chunk), compression)))
    footer = put(_block([]), 0) + put(_block(index), 0)
    out += footer + b"\0" * (40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)
    path.write_bytes(bytes(out))


def _write_bundle(prefix: Path, tensors: dict, shards: int = 1, dtype_code: dict | None = None,
                  sliced: str = "", big_endian: bool = False, compression: int = 0) -> None:
    """A tensor bundle like TF's: tensors spread round-robin over ``shards`` data files."""
    datas = [bytearray() for _ in range(shards)]
    entries = []
    for i, (name, array) in enumerate(sorted(tensors.items())):
        shard, raw = i % shards, np.ascontiguousarray(array).tobytes()
        code = (dtype_code or {}).get(name, {np.dtype("float32"): 1, np.dtype("int32"): 3}[array.dtype])
        entries.append((name.encode(), _entry(code, array.shape, shard, len(datas[shard]), len(raw),
                                              masked_crc32c(raw), name == sliced)))
        datas[shard] += raw
    header = b"\x08" + _varint(shards) + (b"\x10\x01" if big_endian else b"") + _field(3, b"\x08\x01")
    _write_table(prefix.with_name(prefix.name + ".index"), [(b"", header)] + entries, 2, compression)
    for shard, data in enumerate(datas):
        prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{shards:05d}").write_bytes(bytes(data))


@pytest.fixture
def tensors() -> dict:
    rng = np.random.default_rng(0)
    return {
        "net/conv/weight": rng.standard_normal((3, 3, 4, 5), dtype=np.float32),
        "net/conv/bias": rng.standard_normal(5, dtype=np.float32),
        "net/conv2/weight": rng.standard_normal((1, 1, 5, 2), dtype=np.float32),
        "net/step": np.array(7, dtype=np.int32),
        "net/scalar": np.array(0.5, dtype=np.float32),
    }


def test_several_blocks_and_shards(tmp_path, tensors):
    _write_bundle(tmp_path / "model", tensors, shards=2)
    got = read_tf_checkpoint(tmp_path / "model")
    assert sorted(got) == sorted(tensors)
    for name, array in tensors.items():
        assert got[name].dtype == array.dtype and np.array_equal(got[name], array)


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"compression": 1}, "snappy"),
        ({"big_endian": True}, "big-endian"),
        ({"sliced": "net/conv/bias"}, "'net/conv/bias' is partitioned"),
        ({"dtype_code": {"net/step": 7}}, "'net/step' has unsupported dtype string"),
    ],
    ids=["snappy", "big-endian", "sliced", "string"],
)
def test_unsupported_bundles_are_refused(tmp_path, tensors, options, needle):
    _write_bundle(tmp_path / "model", tensors, **options)
    with pytest.raises(WeightsError) as e:
        read_tf_checkpoint(tmp_path / "model.index")
    _one_line_error(e, "model.index", needle)


def test_unsupported_dtype_only_matters_when_read(tmp_path, tensors):
    _write_bundle(tmp_path / "model", tensors, dtype_code={"net/step": 7})
    assert list_variables(tmp_path / "model")["net/step"] == ("string", ())
    assert set(read_tf_checkpoint(tmp_path / "model", ["net/conv/bias"])) == {"net/conv/bias"}
