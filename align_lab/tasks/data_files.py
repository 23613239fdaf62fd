"""Reading tabular text data (a local jsonl, parquet or csv file, or a `datasets` hub name) into rows,
each with where it came from (`line 7` of a jsonl, `row 7` of a parquet/csv, `index 7` of a hub split),
so that every data error is one line naming the file and the row."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class Table:
    """Rows of one split as dicts, the text naming each row, and a content fingerprint."""

    rows: list[dict]
    where: list[str]  # where[i] = "line 8" / "row 8" / "index 7", for error messages
    columns: list[str]
    fingerprint: str


def is_local(path: str) -> bool:
    """A path (it exists, or has a known suffix, starts with . / ~, or has 2+ slashes), not a hub name."""
    p = Path(path).expanduser()
    return p.exists() or p.suffix in FORMATS or path.startswith((".", "/", "~")) or path.count("/") > 1


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_undecodable_line(path: Path) -> str | None:
    """`line N: not UTF-8 text (byte 0x.. at column C)` for the first line of a text file that does not
    decode, or None (jsonl and csv are read as UTF-8)."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return f"line {n}: not UTF-8 text (byte 0x{line[e.start]:02x} at column {e.start + 1})"
    return None


def read_local(path: str, key: str) -> Table:
    """All rows of a local jsonl/parquet/csv file; unreadable or missing files are one-line errors."""
    import datasets

    # the format is the name's the user gave: a link named .jsonl to a blob without a suffix (the HF hub's
    # cache, git-annex, DVC) was "unknown file type ''" (twentieth hunt, case 3)
    suffix = Path(path).expanduser().suffix
    p = Path(path).expanduser().resolve()
    fmt = FORMATS.get(suffix)
    given = Path(path).expanduser()  # a shell's pipe, `task.path=<(cat q.jsonl)`: /dev/fd/63, no suffix
    if given.exists() and not given.is_file() and not given.is_dir():  # was "unknown file type" (hunt 76)
        raise ValueError(f"{key}={path}: {not_a_file(given)}")
    # a folder (a partitioned dataset's) was "unknown file type ''" (thirty-eighth hunt, case 31)
    if fmt is None and p.is_dir():
        raise ValueError(f"{key}={path}: a folder, not a file; give one file ({', '.join(FORMATS)})")
    if fmt is None:
        raise ValueError(f"{key}={path}: unknown file type {suffix!r}; allowed: {', '.join(FORMATS)}")
    if not p.is_file():  # a folder named like a file was "no such file" (seventh hunt); a named pipe too
        raise ValueError(f"{key}={path}: {not_a_file(p)}")
    if p.stat().st_size == 0:
        raise ValueError(f"{key}={path}: the file is empty (no rows)")
    undecodable = first_undecodable_line(p) if fmt in ("json", "csv") else None
    if undecodable:
        raise ValueError(f"{key}={path} {undecodable}; save it as UTF-8")
    if fmt == "json":
        rows, where = json_rows(p, f"{key}={path}")
        columns = list(dict.fromkeys(column for row in rows for column in row))
        return Table(rows, where, columns, file_sha256(p))
    datasets.disable_progress_bars()
    try:
        if fmt == "csv":  # every cell as written: type inference read "007" as 7, and `None` or `NA` as
            rows, columns = csv_rows(p)  # missing (thirty-first hunt, cases 34-35)
            return Table(rows, csv_lines(p, len(rows)), columns, file_sha256(p))
        else:
            ds = datasets.load_dataset(fmt, data_files=str(p), split="train")
            rows, columns = single_floats_as_written(ds.to_list(), ds.features), list(ds.column_names)
    except Exception as e:  # datasets wraps parser errors
        cause = e.__cause__ or e
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise ValueError(f"{key}={path}: unreadable as {suffix[1:]} ({first})") from None
    return Table(rows, [f"row {i + 1}" for i in range(len(rows))], columns, file_sha256(p))


def not_a_file(p: Path) -> str:
    """What `p` is, where it is no regular file (thirty-fourth hunt, case 76: a named pipe, `mkfifo` or a
    pipeline's output, was "no such file")."""
    if p.is_dir():
        return "a folder, not a file"
    if p.is_fifo() or p.is_char_device() or p.is_socket():
        return "a named pipe or device, not a file: write what it gives to a file first, and name that"
    return "no such file"


def single_floats_as_written(rows: list[dict], features) -> list[dict]:
    """`rows` with each value of a float32 column as its shortest decimal (0.3, not the float64 widening
    0.30000001192092896 that no response writes: a parquet answer column saved as float32 scored the right
    answer 0 under auto and exact, in silence; thirty-second hunt, case 71)."""
    import numpy

    single = [c for c, f in features.items() if getattr(f, "dtype", None) == "float32"]
    for row in rows:
        for column in single:
            if isinstance(row[column], float):
                row[column] = float(str(numpy.float32(row[column])))
    return rows


def csv_rows(p: Path) -> tuple[list[dict], list[str]]:
    """A CSV file's rows, each cell the text written in it (pandas, as `datasets` reads one, with no
    type inference and no missing-value words), and its columns."""
    import pandas

    frame = pandas.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    return frame.to_dict("records"), [str(c) for c in frame.columns]


def csv_lines(p: Path, n: int) -> list[str]:
    """`line N` of each of a CSV file's n rows, the file's line its record starts on (a quoted cell may
    span lines; blank lines are no row); `row N` where that count is not the rows' (thirty-third hunt, case
    65: "row 7" was the file's line 8, a spreadsheet's row 8)."""
    import csv

    starts = []
    with open(p, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader, None)  # the header
        start = reader.line_num + 1
        for record in reader:
            if any(cell.strip() for cell in record):
                starts.append(start)
            start = reader.line_num + 1
    return [f"line {k}" for k in starts] if len(starts) == n else [f"row {i + 1}" for i in range(n)]


class TwiceGiven(ValueError):
    """A JSON object that names one key twice (its name the argument)."""


def columns_once(pairs: list[tuple]) -> dict:
    """json's object_pairs_hook: the object, each key once, or TwiceGiven."""
    found: dict = {}
    for key, value in pairs:
        if key in found:
            raise TwiceGiven(key)
        found[key] = value
    return found


def document(text: str):
    """The text as one JSON document of rows (an array, or a dict of columns); None where it is not one
    (a jsonl of several lines, or of one object)."""
    import json

    try:
        whole = json.loads(text)
    except ValueError:
        return None
    columns = isinstance(whole, dict) and whole and all(isinstance(v, list) for v in whole.values())
    return whole if isinstance(whole, list) or columns else None


def json_rows(p: Path, named: str) -> tuple[list[dict], list[str]]:
    """The rows of a jsonl (an object a line) or of a .json file (an array of objects, or a dict of equal
    columns) and where each lies, read by Python's json: each number as written. pyarrow's reader, which
    `datasets` uses, made a column float64 where one row's integer passed int64 (12345678901234567891
    scored as ...7168: thirty-first hunt, case 55), and said a number past a double's range or a torn line
    in two lines of its own with a 0-based row (cases 27 and 33)."""
    import json

    text = p.read_text(encoding="utf-8-sig")  # a byte-order mark as the first character: no row's
    try:
        whole = json.loads(text, object_pairs_hook=columns_once)
    except TwiceGiven as e:  # in a .json file's rows (a jsonl line's is said with its line below)
        if document(text) is not None:
            raise ValueError(
                f"{named}: column {e.args[0]!r} given twice in a row (which one was meant?)"
            ) from None
        whole = None
    except ValueError:
        whole = None
    if isinstance(whole, dict) and whole and all(isinstance(v, list) for v in whole.values()):
        lengths = {column: len(v) for column, v in whole.items()}  # columns: {"question": [...], ...}
        if len(set(lengths.values())) > 1:  # was read as one row of lists (thirty-second hunt, case 47)
            said = ", ".join(f"{column!r} {n}" for column, n in lengths.items())
            raise ValueError(f"{named}: its columns differ in length ({said} values); each needs one a row")
        whole = [dict(zip(whole, values, strict=True)) for values in zip(*whole.values(), strict=True)]
    if isinstance(whole, list):
        rows, where = whole, [f"row {i + 1}" for i in range(len(whole))]
    else:
        rows, where = [], []
        for n, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line, object_pairs_hook=columns_once))
            except TwiceGiven as e:  # Python's json keeps the last: which one was meant? (31st hunt, 68)
                raise ValueError(f"{named} line {n}: column {e.args[0]!r} given twice") from None
            except ValueError as e:
                at = "" if e.msg.endswith(" at") else " at"  # "Invalid control character at" (37th hunt)
                raise ValueError(f"{named} line {n}: not valid JSON ({e.msg}{at} column {e.colno})") from None
            where.append(f"line {n}")
    for row, place in zip(rows, where, strict=True):
        if not isinstance(row, dict):
            raise ValueError(f"{named} {place}: a JSON {type(row).__name__}, not an object of columns")
    if not rows:
        raise ValueError(f"{named}: the file is empty (no rows)")
    return rows, where


def read_hub(name: str, split: str, key: str) -> Table:
    """One split of a `datasets` hub dataset; without network (or with HF_HUB_OFFLINE=1) a one-line error."""
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(name, split=split)
    except (ConnectionError, OSError) as e:
        reason = " ".join(str(e).split())[:160]
        raise ValueError(
            f"{key}={name}: not a local file, and loading it from the Hugging Face Hub needs network "
            f"({reason}); pass a local jsonl/parquet/csv path or download it first"
        ) from None
    except ValueError as e:  # an unknown split
        raise ValueError(f"{key}={name}: {' '.join(str(e).split())[:200]}") from None
    where = [f"{split} index {i}" for i in range(len(ds))]
    return Table(ds.to_list(), where, list(ds.column_names), f"{name}@{split}:{ds._fingerprint}")


def read_table(path: str, split: str, key: str) -> Table:
    """A local file (its only split is the whole file) or a hub dataset's split."""
    return read_local(path, key) if is_local(path) else read_hub(path, split, key)


def text(row: dict, column: str, place: str) -> str:
    """The non-empty string in `column` of a row, or a one-line error naming the place and column."""
    value = row.get(column)
    if value is None:  # a JSON null too: "is missing" alone read as if the column were not there (35th, 14)
        raise ValueError(f"{place}: column {column!r} is missing or null (no value)")
    if not isinstance(value, str):
        raise ValueError(f"{place}: column {column!r} is {type(value).__name__}, must be text")
    if not value.strip():
        raise ValueError(f"{place}: column {column!r} is empty")
    if not "".join(c for c in value if c.isprintable() and not c.isspace()).strip("\u200b\u200c\u200d\ufeff"):
        raise ValueError(f"{place}: column {column!r} holds invisible characters only")  # NUL, U+200B (49th)
    return value


def split_at_marker(chosen: str, rejected: str, marker: str, place: str) -> tuple[str, str, str]:
    """HH-RLHF layout: whole transcripts in both columns; the prompt is the shared text up to and
    including the last `marker` of `chosen`. Returns (prompt, chosen response, rejected response)."""
    cut = chosen.rfind(marker)
    if cut < 0:
        raise ValueError(f"{place}: column 'chosen' has no {marker!r} to split the prompt at")
    prompt = chosen[: cut + len(marker)]
    if not rejected.startswith(prompt):
        raise ValueError(f"{place}: 'chosen' and 'rejected' do not share the prompt ending at {marker!r}")
    return prompt, chosen[len(prompt) :], rejected[len(prompt) :]
