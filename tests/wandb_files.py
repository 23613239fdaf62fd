"""Readers of W&B's offline transaction log (run-<id>.wandb) for the tests: its records, history,
config, run record and summary. The framing (blocks, chunks, checksums) is the package's
`align_lab.tracking.wandb_reader.iter_payloads`, which the tracker uses to wait for a complete file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from align_lab.tracking.wandb_reader import iter_payloads


def read_wandb_records(path: str | os.PathLike[str]) -> list[Any]:
    """Every `wandb_internal_pb2.Record` in a .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    records = []
    for payload in iter_payloads(Path(path).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def find_wandb_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The offline transaction logs below run_dir/wandb, oldest first (one per (re)start)."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))


def _key(item: Any) -> str:
    # Keys come as `key`, or as `nested_key` parts (0.31 writes even "train/kl" that way).
    return item.key or ".".join(item.nested_key)


def _history_value(item: Any) -> Any:
    kind = item.WhichOneof("value")  # typed values, which later writers use
    if kind is None:
        return json.loads(item.value_json)
    if kind == "none":
        return None
    if kind == "json":
        return json.loads(item.json)
    return getattr(item, kind)


def wandb_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One {key: value} per history record (incl. `_step`, `_runtime`, `_timestamp`)."""
    return [
        {_key(item): _history_value(item) for item in record.history.item}
        for record in read_wandb_records(path)
        if record.WhichOneof("record_type") == "history"
    ]


def _apply_items(target: dict[str, Any], update: Any, remove: Any) -> None:
    """Config and summary items share a shape: key or nested_key parts, value_json."""
    for item in update:
        parts = [item.key] if item.key else list(item.nested_key)
        node = target
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = json.loads(item.value_json)
    for item in remove:
        parts = [item.key] if item.key else list(item.nested_key)
        node = target
        for part in parts[:-1]:
            node = node.get(part, {})
        node.pop(parts[-1], None)


def wandb_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's config: the run record's, then every config record, merged in order.

    Keys starting with "_" (wandb's own, e.g. `_wandb`) are left out.
    """
    config: dict[str, Any] = {}
    for record in read_wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            _apply_items(config, record.run.config.update, record.run.config.remove)
        elif kind == "config":
            _apply_items(config, record.config.update, record.config.remove)
    return {k: v for k, v in config.items() if not k.startswith("_")}


def wandb_run_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The run record: run_id, project, entity, name, group, job_type, tags."""
    for record in read_wandb_records(path):
        if record.WhichOneof("record_type") == "run":
            run = record.run
            return {
                "run_id": run.run_id,
                "project": run.project,
                "entity": run.entity,
                "name": run.display_name,
                "group": run.run_group,
                "job_type": run.job_type,
                "tags": list(run.tags),
            }
    raise ValueError(f"{path}: no run record")


def wandb_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The run summary: every summary record merged in order (wandb's `_` keys included)."""
    summary: dict[str, Any] = {}
    for record in read_wandb_records(path):
        if record.WhichOneof("record_type") == "summary":
            _apply_items(summary, record.summary.update, record.summary.remove)
    return summary
