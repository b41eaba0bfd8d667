"""The derived store: projection outputs and reducer snapshots in an LMDB environment of their own,
beside the log (`<data>/derived/<config hash>/`). It is rebuildable: delete it and replay.

Tables:
  out:<output>  big-endian (offset, sequence) -> one output row (the row's own bytes)
  snapshots     projection name, 0, config hash, big-endian offset -> reducer snapshot
  meta          b"config" -> the canonical configuration JSON

Keys depend only on the rows (the offset of the event that produced them and their order among that
event's rows), so a replay writes the same keys and values however it was chunked.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import lmdb
import numpy as np

_ROW_KEY = struct.Struct(">QI")
MAP_SIZE = 1 << 30


class DerivedStore:
    """Outputs and snapshots of one projection configuration."""

    def __init__(self, path: str | os.PathLike, config_hash: bytes, outputs: list[str], *, readonly: bool = False):
        self.path = Path(path)
        self.config_hash = config_hash
        self._pid = os.getpid()
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.path), map_size=MAP_SIZE, max_dbs=len(outputs) + 4, sync=False,
                             metasync=False, readonly=readonly, readahead=False)
        create = not readonly
        self._outputs = {name: self.env.open_db(f"out:{name}".encode(), create=create) for name in outputs}
        self._snapshots = self.env.open_db(b"snapshots", create=create)
        self._meta = self.env.open_db(b"meta", create=create)

    @classmethod
    def for_config(cls, data_dir: str | os.PathLike, config_hash: bytes, outputs: list[str], **kwargs) -> DerivedStore:
        return cls(Path(data_dir) / "derived" / config_hash.hex()[:16], config_hash, outputs, **kwargs)

    def close(self) -> None:
        self.env.close()

    def _grow_if_needed(self, need: int) -> None:
        info = self.env.info()
        used = (info["last_pgno"] + 1) * self.env.stat()["psize"]
        if used + 2 * need + (16 << 20) > info["map_size"]:
            self.env.set_mapsize(max(2 * info["map_size"], used + 4 * need))

    def write(self, rows: dict[str, np.ndarray], snapshots: dict[str, tuple[int, bytes]] | None = None,
              config_json: str | None = None) -> None:
        """Write output rows (each array's first field is the producing offset) and snapshots in one
        transaction."""
        need = sum(a.nbytes + 16 * len(a) for a in rows.values()) + sum(len(s) for _, s in (snapshots or {}).values())
        self._grow_if_needed(need)
        with self.env.begin(write=True) as txn:
            if config_json is not None:
                txn.put(b"config", config_json.encode(), db=self._meta)
            for name, arr in rows.items():
                if len(arr) == 0:
                    continue
                db = self._outputs[name]
                raw = arr.tobytes()
                size = arr.dtype.itemsize
                offsets = arr["offset"].tolist()
                seq = 0
                for i, off in enumerate(offsets):
                    seq = seq + 1 if i and offsets[i - 1] == off else 0
                    txn.put(_ROW_KEY.pack(off, seq), raw[i * size:(i + 1) * size], db=db)
            for name, (offset, blob) in (snapshots or {}).items():
                txn.put(self._snapshot_key(name, offset), blob, db=self._snapshots)

    def _snapshot_key(self, name: str, offset: int) -> bytes:
        return name.encode() + b"\0" + self.config_hash + offset.to_bytes(8, "big")

    def snapshot_offsets(self, name: str) -> list[int]:
        """Offsets of the stored snapshots of one projection, ascending."""
        prefix = name.encode() + b"\0" + self.config_hash
        out = []
        with self.env.begin() as txn:
            cur = txn.cursor(db=self._snapshots)
            if cur.set_range(prefix):
                for key in cur.iternext(values=False):
                    if not key.startswith(prefix):
                        break
                    out.append(int.from_bytes(key[len(prefix):], "big"))
        return out

    def snapshot(self, name: str, offset: int) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(self._snapshot_key(name, offset), db=self._snapshots)

    def rows(self, name: str, dtype: np.dtype, from_offset: int = 0) -> np.ndarray:
        """Every stored row of an output from an offset, in (offset, sequence) order."""
        parts: list[bytes] = []
        with self.env.begin(buffers=True) as txn:
            cur = txn.cursor(db=self._outputs[name])
            if cur.set_range(_ROW_KEY.pack(from_offset, 0)):
                parts = [bytes(v) for v in cur.iternext(keys=False)]
        return np.frombuffer(b"".join(parts), dtype=dtype).copy()

    def items(self) -> Iterator[tuple[str, bytes, bytes]]:
        """Every (table, key, value), for byte-for-byte comparisons of two stores."""
        with self.env.begin() as txn:
            for name, db in sorted(self._outputs.items()):
                for k, v in txn.cursor(db=db):
                    yield f"out:{name}", k, v
            for k, v in txn.cursor(db=self._snapshots):
                yield "snapshots", k, v
