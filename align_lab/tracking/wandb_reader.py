"""The framing of W&B's offline transaction log (run-<id>.wandb): enough to tell when the writer
has finished the file (the tracker's close and the report's sync wait on it). The readers of its
records (history, config, summary), which only the tests use, are in tests/wandb_files.py.

wandb 0.31 has no public reader. The format, checked against the installed 0.31.0 writer
(wandb-core's Go `leveldb` + `transactionlog` packages) and its files:

- a 7-byte header: b":W&B", magic 0xBEE1 (uint16 little-endian), version byte 0;
- then the LevelDB log format: 32 KiB blocks (counted from the start of the file, header
  included); each chunk is crc u32 LE, length u16 LE, type u8 (1 full, 2 first, 3 middle,
  4 last) and the payload. A chunk never crosses a block; fewer than 7 bytes left in a
  block are zero padding. The crc is the IEEE CRC-32 (zlib.crc32) of type byte + payload,
  not LevelDB's crc32c;
- each record is a serialized `wandb.proto.wandb_internal_pb2.Record`.

wandb-core writes the file a whole 32 KiB block at a time and the last partial block only
when the run's stream closes, shortly *after* run.finish() returns: see wait_until_complete.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK_SIZE = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")  # crc, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_payloads(data: bytes) -> Iterator[bytes]:
    """The record payloads of a .wandb file's bytes. A torn tail (a killed writer) ends it."""
    if data[: len(HEADER)] != HEADER:
        raise ValueError(
            f"not a version-0 .wandb file (header {data[:7]!r}, want {HEADER!r}); "
            "this reader follows wandb 0.31.0"
        )
    pos, pending = len(HEADER), None
    while True:
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER.size:
            pos += left_in_block  # zero trailer
            continue
        if pos + CHUNK_HEADER.size > len(data):
            return
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        end = pos + CHUNK_HEADER.size + length
        if crc == length == kind == 0:
            pos += left_in_block  # zeroed block remainder
            continue
        if end > len(data):
            return
        if length > left_in_block - CHUNK_HEADER.size:
            raise ValueError(f"chunk at offset {pos} crosses a block boundary")
        if zlib.crc32(data[pos + 6 : end]) != crc:
            raise ValueError(f"checksum mismatch in chunk at offset {pos}")
        payload = data[pos + CHUNK_HEADER.size : end]
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = bytearray(payload)
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += payload
            if kind == LAST:
                yield bytes(pending)
                pending = None
        else:
            raise ValueError(f"unexpected chunk type {kind} at offset {pos}")
        pos = end


def is_complete(path: str | os.PathLike[str]) -> bool:
    """Whether the writer has finished the file: its last record is the run's exit record."""
    from wandb.proto import wandb_internal_pb2

    last = deque(iter_payloads(Path(path).read_bytes()), maxlen=1)
    if not last:
        return False
    record = wandb_internal_pb2.Record()
    record.ParseFromString(last[0])
    return record.WhichOneof("record_type") == "exit"


def wait_until_complete(path: str | os.PathLike[str], timeout_s: float = 10.0) -> bool:
    """Polls `is_complete` until true or timeout_s has passed; returns the last answer.

    wandb's run.finish() returns before wandb-core has closed the .wandb file (the close is
    a fire-and-forget message), and until then the file holds only whole 32 KiB blocks.
    """
    deadline = time.monotonic() + timeout_s
    while not is_complete(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
