"""Read TensorFlow checkpoints (the ``tf.train.Saver`` V2 "tensor bundle" format) without TensorFlow.

A checkpoint with prefix ``.../epoch50`` is two or more files:

* ``epoch50.index``: a LevelDB-format table (SSTable). Keys are variable names; the value of the
  empty key is a ``BundleHeaderProto`` (number of shards, endianness), every other value a
  ``BundleEntryProto`` (dtype, shape, shard, offset, size, masked CRC32C of the bytes).
* ``epoch50.data-00000-of-00001`` (one file per shard): raw little-endian tensor bytes, C order.

Only what tensor bundles use is implemented: uncompressed table blocks (TensorFlow's bundle writer
never compresses them), unpartitioned variables, numeric dtypes. Every tensor's checksum is verified.

    >>> variables = read_tf_checkpoint("MSPFN/epoch50")        # {name: numpy array}
    >>> list_variables("MSPFN/epoch50.index")                   # {name: (dtype, shape)}
"""

from __future__ import annotations

import functools
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from ...errors import WeightsError

PathLike = Union[str, "os.PathLike[str]"]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes + 8-byte magic
_BLOCK_TRAILER_SIZE = 5  # compression type byte + masked CRC32C
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_ARCHIVES = {".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".xz", ".bz2"}

# TensorFlow DataType enum -> numpy dtype (little-endian). Others (strings, resources, bfloat16,
# quantized types) are refused when read.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    8: np.dtype("<c8"),  # DT_COMPLEX64
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    18: np.dtype("<c16"),  # DT_COMPLEX128
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
_DTYPE_NAMES = {7: "string", 14: "bfloat16", 20: "resource", 21: "variant"}


def _dtype_name(code: int) -> str:
    if code in _DTYPES:
        return _DTYPES[code].name
    return _DTYPE_NAMES.get(code, f"DataType {code}")


# --------------------------------------------------------------------------------------------
# CRC32C (Castagnoli), as TensorFlow and LevelDB use it, vectorised with numpy.
# --------------------------------------------------------------------------------------------

_CRC_POLY = 0x82F63B78  # reflected Castagnoli polynomial


def _byte_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CRC_POLY), table >> 1).astype(np.uint32)
    return table


_T0 = _byte_table()
# Slicing-by-4: _T[k][b] is the register after byte b followed by k zero bytes.
_T = [_T0]
for _ in range(3):
    _T.append(((_T[-1] >> 8) ^ _T0[_T[-1] & 0xFF]).astype(np.uint32))
_T1, _T2, _T3 = _T[1], _T[2], _T[3]
_BITS = np.arange(32, dtype=np.uint32)


def _apply(basis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply the GF(2)-linear map with images ``basis[i]`` of bit i to every value of ``x``."""
    bits = (x[..., None] >> _BITS) & np.uint32(1)
    return np.bitwise_xor.reduce(bits * basis, axis=-1).astype(np.uint32)


@functools.cache
def _zeros_operator(nbytes: int) -> np.ndarray:
    """The linear map of the CRC register over ``nbytes`` zero bytes, as images of the 32 bits."""
    if nbytes == 1:
        unit = np.uint32(1) << _BITS
        return (_T0[unit & 0xFF] ^ (unit >> 8)).astype(np.uint32)
    half = _zeros_operator(nbytes // 2)
    op = _apply(half, half)
    if nbytes % 2:
        op = _apply(_zeros_operator(1), op)
    return op


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC32C of ``data``. Large inputs run as many interleaved lanes in numpy (~70 MB/s)."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    buf = buf.reshape(-1)
    n = buf.size
    if n == 0:
        return 0
    # Lanes of equal length; leading zero bytes leave a zero-initialised CRC unchanged, so the data
    # is left-padded with zeros to fill them exactly.
    lanes = 1 << max(0, min(14, (n // 256).bit_length() - 1))
    words = -(-n // (4 * lanes))
    padded = np.zeros(lanes * words * 4, dtype=np.uint8)
    padded[padded.size - n:] = buf
    columns = np.ascontiguousarray(padded.view("<u4").reshape(lanes, words).T)
    reg = np.zeros(lanes, dtype=np.uint32)
    for word in columns:
        x = reg ^ word
        reg = _T3[x & 0xFF] ^ _T2[(x >> 8) & 0xFF] ^ _T1[(x >> 16) & 0xFF] ^ _T0[x >> 24]
    # Combine neighbouring lanes: crc(A + B) = zeros_{|B|}(crc(A)) ^ crc(B) (zero initial value).
    length = words * 4
    while reg.size > 1:
        reg = _apply(_zeros_operator(length), reg[0::2]) ^ reg[1::2]
        length *= 2
    # Standard CRC32C: initial register 0xFFFFFFFF, final xor 0xFFFFFFFF.
    init = _apply(_zeros_operator(n), np.array([0xFFFFFFFF], dtype=np.uint32))[0]
    return int(init ^ reg[0]) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """The masked CRC32C that TensorFlow and LevelDB store: rotate right by 15, add a constant."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Protocol buffer wire format (just enough for BundleHeaderProto and BundleEntryProto).
# --------------------------------------------------------------------------------------------


class _Corrupt(Exception):
    """Malformed bytes; turned into a WeightsError naming the file by the caller."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _Corrupt("varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a serialized protobuf message.

    The value is an ``int`` for wire types 0, 1 and 5 and ``bytes`` for wire type 2; ``_number``
    and ``_bytes`` give it its type where the caller has checked the wire type.
    """
    pos = 0
    value: int | bytes
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise _Corrupt("truncated fixed64 field")
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Corrupt("length-delimited field runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            if pos + 4 > len(buf):
                raise _Corrupt("truncated fixed32 field")
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _number(value: int | bytes) -> int:
    """A numeric field's value (wire type 0, 1 or 5)."""
    if isinstance(value, bytes):
        raise _Corrupt("a length-delimited field where a number belongs")
    return value


def _bytes(value: int | bytes) -> bytes:
    """A length-delimited field's value (wire type 2)."""
    if not isinstance(value, bytes):
        raise _Corrupt("a number where a length-delimited field belongs")
    return value


def _int64(value: int | bytes) -> int:
    """A varint field read as a two's-complement int64."""
    number = _number(value)
    return number - (1 << 64) if number >= 1 << 63 else number


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lies in the data shards (a decoded ``BundleEntryProto``)."""

    name: str
    dtype_code: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool

    @property
    def dtype(self) -> str:
        return _dtype_name(self.dtype_code)


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, wire, value in _fields(buf):
        if number == 2 and wire == 2:  # Dim
            size = 0
            for n2, w2, v2 in _fields(_bytes(value)):
                if n2 == 1 and w2 == 0:
                    size = _int64(v2)
            dims.append(size)
        elif number == 3 and wire == 0 and value:
            raise _Corrupt("tensor shape of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
    dtype = shard_id = offset = size = 0
    shape: tuple[int, ...] = ()
    crc32c: int | None = None
    sliced = False
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dtype = _number(value)
        elif number == 2 and wire == 2:
            shape = _parse_shape(_bytes(value))
        elif number == 3 and wire == 0:
            shard_id = _number(value)
        elif number == 4 and wire == 0:
            offset = _int64(value)
        elif number == 5 and wire == 0:
            size = _int64(value)
        elif number == 6 and wire == 5:
            crc32c = _number(value)
        elif number == 7:
            sliced = True
    return TensorEntry(name, dtype, shape, shard_id, offset, size, crc32c, sliced)


# --------------------------------------------------------------------------------------------
# The .index table.
# --------------------------------------------------------------------------------------------


def _block_handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def _read_block(data: bytes, offset: int, size: int) -> bytes:
    if offset + size + _BLOCK_TRAILER_SIZE > len(data) - _FOOTER_SIZE:
        raise _Corrupt(f"block at byte {offset} runs past the end of the file")
    contents = data[offset:offset + size]
    kind, stored_crc = data[offset + size], struct.unpack_from("<I", data, offset + size + 1)[0]
    if masked_crc32c(data[offset:offset + size + 1]) != stored_crc:
        raise _Corrupt(f"checksum mismatch in the table block at byte {offset}")
    if kind == 1:
        raise _Corrupt("snappy-compressed table block (TensorFlow's checkpoint writer does not produce "
                       "these; not supported)")
    if kind != 0:
        raise _Corrupt(f"unknown table block compression type {kind}")
    return contents


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield the (key, value) pairs of a table block (prefix-compressed keys, restart array)."""
    if len(block) < 4:
        raise _Corrupt("table block shorter than its restart count")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise _Corrupt("table block restart array larger than the block")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_size, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_size > limit:
            raise _Corrupt("malformed table block entry")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + value_size]
        pos += value_size


def _table_entries(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """All (key, value) pairs of an SSTable held in ``data``, in key order."""
    if len(data) < _FOOTER_SIZE:
        raise _Corrupt(f"file of {len(data)} bytes is shorter than a table footer")
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise _Corrupt("bad magic number (not a TensorFlow checkpoint index)")
    _meta_offset, _meta_size, pos = _block_handle(footer, 0)
    index_offset, index_size, _ = _block_handle(footer, pos)
    for _separator, handle in _block_entries(_read_block(data, index_offset, index_size)):
        offset, size, _ = _block_handle(handle, 0)
        yield from _block_entries(_read_block(data, offset, size))


# --------------------------------------------------------------------------------------------
# Checkpoint paths and the public API.
# --------------------------------------------------------------------------------------------


def _prefix_from_directory(folder: Path) -> Path:
    state = folder / "checkpoint"
    if state.is_file():
        text = state.read_text(errors="replace")
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', text, re.MULTILINE)
        if match:
            # The recorded path may be absolute, even from another OS: keep its base name only.
            candidate = folder / re.split(r"[\\/]", match.group(1))[-1]
            if candidate.with_name(candidate.name + ".index").is_file():
                return candidate
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) == 1:
        return indexes[0].with_suffix("")
    if not indexes:
        raise WeightsError(f"{folder}: no TensorFlow checkpoint (*.index file) in this folder")
    names = ", ".join(p.name for p in indexes)
    raise WeightsError(f"{folder}: several checkpoints ({names}); name the .index file of the one to use")


def checkpoint_prefix(path: PathLike) -> Path:
    """The checkpoint prefix (``.../epoch50``) named by a prefix, one of its files, or its folder."""
    p = Path(path)
    if p.is_dir():
        return _prefix_from_directory(p)
    if p.name.endswith(".index"):
        prefix = p.with_name(p.name[: -len(".index")])
    elif _DATA_SUFFIX.search(p.name):
        prefix = p.with_name(_DATA_SUFFIX.sub("", p.name))
    else:
        prefix = p
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file():
        if p.is_file() and p.suffix.lower() in _ARCHIVES:
            raise WeightsError(f"{path}: an archive; unpack it and give the checkpoint's .index file")
        raise WeightsError(f"{path}: not a TensorFlow checkpoint ({index.name} not found)")
    return prefix


@dataclass(frozen=True)
class _Bundle:
    prefix: Path
    num_shards: int
    entries: dict[str, TensorEntry]

    @property
    def index_path(self) -> Path:
        return self.prefix.with_name(self.prefix.name + ".index")

    def shard_path(self, shard: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard:05d}-of-{self.num_shards:05d}")


def _open_bundle(path: PathLike) -> _Bundle:
    prefix = checkpoint_prefix(path)
    index = prefix.with_name(prefix.name + ".index")
    try:
        data = index.read_bytes()
    except OSError as e:
        raise WeightsError(f"{index}: cannot read ({e.strerror or e})") from e
    num_shards, entries = 1, {}
    try:
        for key, value in _table_entries(data):
            if key == b"":
                for number, wire, field in _fields(value):
                    if number == 1 and wire == 0:
                        num_shards = _number(field)
                    elif number == 2 and wire == 0 and field == 1:
                        raise _Corrupt("big-endian checkpoint (not supported)")
                continue
            name = key.decode("utf-8", errors="replace")
            entries[name] = _parse_entry(name, value)
    except _Corrupt as e:
        raise WeightsError(f"{index}: corrupt or unsupported checkpoint index: {e}") from None
    if num_shards < 1:
        raise WeightsError(f"{index}: corrupt checkpoint index: header names {num_shards} data shards")
    return _Bundle(prefix, num_shards, entries)


def list_variables(path: PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of every tensor in the checkpoint (dtype as a numpy-style name)."""
    return {name: (e.dtype, e.shape) for name, e in _open_bundle(path).entries.items()}


def read_tf_checkpoint(path: PathLike, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read the tensors of a TensorFlow checkpoint into numpy arrays, verifying their checksums.

    ``path`` is the checkpoint prefix (``.../epoch50``), its ``.index`` or data file, or a folder
    holding it. ``names`` limits the reading to those variables; names the checkpoint lacks are
    left out of the result (the caller decides whether that is an error).
    """
    bundle = _open_bundle(path)
    wanted = bundle.entries if names is None else {n: bundle.entries[n] for n in names if n in bundle.entries}
    by_shard: dict[int, list[TensorEntry]] = {}
    for entry in wanted.values():
        _check_entry(bundle, entry)
        by_shard.setdefault(entry.shard_id, []).append(entry)
    out: dict[str, np.ndarray] = {}
    for shard, entries in sorted(by_shard.items()):
        shard_path = bundle.shard_path(shard)
        try:
            with open(shard_path, "rb") as f:
                file_size = os.fstat(f.fileno()).st_size
                for entry in sorted(entries, key=lambda e: e.offset):
                    out[entry.name] = _read_tensor(f, shard_path, file_size, entry)
        except FileNotFoundError:
            raise WeightsError(
                f"{shard_path}: data file of checkpoint {bundle.prefix.name} is missing "
                f"(keep it beside {bundle.index_path.name})"
            ) from None
        except OSError as e:
            raise WeightsError(f"{shard_path}: cannot read ({e.strerror or e})") from e
    return {name: out[name] for name in wanted}


def _check_entry(bundle: _Bundle, entry: TensorEntry) -> None:
    where = f"{bundle.index_path}: variable {entry.name!r}"
    if entry.sliced:
        raise WeightsError(f"{where} is partitioned into slices (not supported)")
    if entry.dtype_code not in _DTYPES:
        raise WeightsError(f"{where} has unsupported dtype {entry.dtype}")
    if not 0 <= entry.shard_id < bundle.num_shards:
        raise WeightsError(f"{where} lies in shard {entry.shard_id} of {bundle.num_shards} (corrupt index)")
    if any(d < 0 for d in entry.shape):
        raise WeightsError(f"{where} has an invalid shape {list(entry.shape)} (corrupt index)")
    expected = int(np.prod(entry.shape, dtype=np.int64)) * _DTYPES[entry.dtype_code].itemsize
    if entry.size != expected or entry.offset < 0:
        raise WeightsError(
            f"{where}: {entry.size} bytes at offset {entry.offset} do not fit shape {list(entry.shape)} "
            f"of {entry.dtype} (corrupt index)"
        )


def _read_tensor(f, shard_path: Path, file_size: int, entry: TensorEntry) -> np.ndarray:
    end = entry.offset + entry.size
    if end > file_size:
        raise WeightsError(
            f"{shard_path}: file is truncated ({file_size} bytes; variable {entry.name!r} needs bytes "
            f"{entry.offset}-{end})"
        )
    f.seek(entry.offset)
    raw = bytearray(entry.size)
    if f.readinto(raw) != entry.size:
        raise WeightsError(f"{shard_path}: file is truncated (short read of variable {entry.name!r})")
    if entry.crc32c is not None and masked_crc32c(raw) != entry.crc32c:
        raise WeightsError(f"{shard_path}: checksum mismatch in variable {entry.name!r} (file is corrupt)")
    return np.frombuffer(raw, dtype=_DTYPES[entry.dtype_code]).reshape(entry.shape)
