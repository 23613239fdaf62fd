"""What comments and docs cite exists: a section of a markdown file (`spec.md 9.1`, `design.md section 9`,
`algorithms.md 1.3`: the number must head a section of that file), a repository file or folder
(`docs/x.md`, `align_lab/train/micro.py`, `train/micro.py` inside the package, `conf/algo/`), a bare file
name in a code comment or docstring (`token_budget.py`: some file of the repository has that name, or it is
a peer's file in PEER_FILES), and in docs a folder named in a code span (`reference/`).

Scanned: the comments and strings of the Python files, and the comment lines of the YAML and shell files,
in align_lab/, hydra_plugins/, conf/, sweeps/, scripts/, benchmarks/ and tests/; README.md, docs/*.md and
benchmarks/RESULTS.md.
The algorithm specification is cited as `spec.md N.M`: docs/spec.md is the copy of ../shared/algorithms.md
(shared/README.md) kept in the project so that a clone resolves the citations; the last test keeps the
copy equal to its original where the original is beside the project root."""

from __future__ import annotations

import functools
import io
import os
import re
import tokenize
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.unit.test_docs import PAGES, repo_paths, split

CODE_DIRS = ("align_lab", "hydra_plugins", "conf", "sweeps", "scripts", "benchmarks", "tests")
SPEC = ROOT / "docs" / "spec.md"
SHARED_SPEC = ROOT.parent / "shared" / "algorithms.md"
SPEC_PREFACE_END = "<!-- the copy of ../shared/algorithms.md starts below -->\n"
# `NAME.md` then "section(s)"/"§" or nothing, then numbers: "spec.md 1.3-1.5, 12", "design.md section 9"
NUMBERS = r"\d+(?:\.\d+)*(?:\s*-\s*\d+(?:\.\d+)*)?(?:,\s*\d+(?:\.\d+)*(?:\s*-\s*\d+(?:\.\d+)*)?)*"
SECTION_CITE = re.compile(r"([\w-]+\.md),?\s+(?:sections?\s+|§\s?)?(" + NUMBERS + r")(?![\w/.-])")
# the specification by its name alone: "spec section 9.1", "spec 12"
SPEC_CITE = re.compile(r"\bspec(?:ification)?,?\s+(?:sections?\s+|§\s?)?(" + NUMBERS + r")(?![\w/.-])")
# a bare "section N" in a doc cites the page it is on, unless a paper's name or year comes first
# ("Back to Basics section 3", "Yu et al. 2025, section 3.2")
OWN_SECTION = re.compile(r"\bsection (\d+(?:\.\d+)*)\b")
HEADING_NUMBER = re.compile(r"#{1,6}\s+(\d+(?:\.\d+)*)\.?\s")
# a path inside the package from its root, as comments write it: train/micro.py, run/execute.py
PACKAGE_PATH = re.compile(
    r"(?<![\w/.-])((?:"
    + "|".join(
        sorted(p.name for p in (ROOT / "align_lab").iterdir() if p.is_dir() and not p.name.startswith("_"))
    )
    + r")/[\w/]*\w\.py)\b"
)
TOPS = "|".join(CODE_DIRS + ("docs",))
REPO_FOLDER = re.compile(r"(?<![\w/.-])((?:" + TOPS + r")(?:/[\w.-]+)*/)(?![\w<{*$])")
# code spans in docs that name a folder of a run folder, the cache or a metric group, not of the repository
NOT_REPO_FOLDERS = {".hydra/", "checkpoints/", "wandb/", "time/", "eval/", "train/", "memory/", "outputs/"}


def section_numbers(page: Path) -> set[str]:
    """The numbers that head a section of `page` ("## 9. Floors" -> 9, "### 16.2 What ..." -> 16.2)."""
    return {m.group(1) for line in split(page.read_text())[0] if (m := HEADING_NUMBER.match(line))}


def expand(numbers: str) -> list[str]:
    """ "1.3-1.5, 12" -> ["1.3", "1.5", "12"]: each end of a range must exist."""
    return [n.strip() for part in numbers.split(",") for n in part.split("-")]


def md_file(name: str, root: Path) -> Path | None:
    """The markdown file a citation names by its file name: docs/ first, then anywhere in the repository."""
    for candidate in (root / "docs" / name, root / name):
        if candidate.exists():
            return candidate
    found = sorted(p for d in CODE_DIRS for p in files_under(root / d) if p.name == name)
    return found[0] if found else None


@functools.cache
def files_under(folder: Path) -> tuple[Path, ...]:
    """Every file under `folder`, never descending into what `ignored` leaves out: rglob walked the
    thousands of files of benchmarks/.venv-trl for each check (25 s of the fast tier)."""
    found = []
    for where, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not ignored(Path(d))]
        found += [Path(where, name) for name in names]
    return tuple(found)


def comment_texts(path: Path) -> list[str]:
    """The comments and strings of a Python file; the comment lines of a YAML or shell file."""
    text = path.read_text()
    if path.suffix != ".py":
        return [line[line.index("#") :] for line in text.splitlines() if "#" in line]
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return [t.string for t in tokens if t.type in (tokenize.COMMENT, tokenize.STRING)]


def doc_texts(page: Path) -> tuple[list[str], list[str]]:
    """(every line, the code spans and code-block lines) of a markdown page."""
    prose, code = split(page.read_text())
    return prose + code, code + [span for line in prose for span in re.findall(r"`([^`]+)`", line)]


def bad_citations(texts: list[str], where: str, root: Path = ROOT, page: Path | None = None) -> list[str]:
    """Each section, file or folder that `texts` (from `where`) cite and that does not exist. `page`: the doc
    the texts are from (a bare "section N" cites it); None for code, whose comments may also name a package
    file from the package's root (`train/micro.py`)."""
    bad = []
    for text in texts:
        cites = SECTION_CITE.findall(text) + [("spec.md", n) for n in SPEC_CITE.findall(text)]
        for name, numbers in cites:
            cited = md_file(name, root)
            if cited is None:
                bad.append(f"{where}: cites {name} {numbers}: no file {name}")
                continue
            missing = [n for n in expand(numbers) if n not in section_numbers(cited)]
            if missing:
                bad.append(f"{where}: cites {name} {numbers}: no section {', '.join(missing)} in {name}")
        if page is not None:
            for m in OWN_SECTION.finditer(text):
                before = (text[: m.start()].split()[-1:] or ["."])[0].strip("`*(")
                if not before or before[0].isupper() or before[0].isdigit() or before[-1] in ",)]":
                    continue
                if before in ("spec", "specification"):  # SPEC_CITE's
                    continue
                if m.group(1) not in section_numbers(page):
                    bad.append(f"{where}: cites section {m.group(1)}: no such section on this page")
        inside = [] if page is not None else [f"align_lab/{p}" for p in PACKAGE_PATH.findall(text)]
        for path in repo_paths(text) + inside:
            path = path.rstrip(".")
            if not any(c in path for c in "<>*{}$") and not (root / path).exists():
                bad.append(f"{where}: cites {path}, which does not exist")
        for folder in REPO_FOLDER.findall(text):
            if not (root / folder).is_dir():
                bad.append(f"{where}: cites the folder {folder}, which does not exist")
    return bad


def bad_folder_spans(spans: list[str], where: str, root: Path = ROOT) -> list[str]:
    """Each code span of a doc that is a relative folder (`reference/`) found neither in the repository nor
    in the package, and that is not a run folder's, the cache's or a metric group's."""
    bad = []
    for span in spans:
        if re.fullmatch(r"[\w.-]+(?:/[\w.-]+)*/", span) and span.split("/")[0] + "/" not in NOT_REPO_FOLDERS:
            if not any((base / span).is_dir() for base in (root, root / "align_lab", root / "conf")):
                bad.append(f"{where}: names the folder `{span}`, which does not exist")
    return bad


# a bare file name (`token_budget.py`, `design.md`), not part of a path; data files (summary.json) are
# what the code writes, so only .py and .md are checked
BARE_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.(?:py|md))(?![\w/-])")
# peers' files that comments cite beside the peer (verl's core_algos.py L1025), and the docs' example env
PEER_FILES = {
    "agent_loop.py", "config_ppo.py", "core_algos.py", "cpo_trainer.py", "experience_maker.py",
    "functional.py", "grpo_trainer.py", "kto_trainer.py", "loss.py", "orpo_trainer.py",
    "rollout_corr_helper.py", "samples_generator.py", "tool_agent_loop.py", "my_envs.py",
}  # fmt: skip
# files the docs name that are no repository's file: a how-to's new file, one a test writes, retired
# benchmarks shown with `git show <commit>:path`, and peers' files named beside the peer
DOC_NAMES = {
    "reinforce_mean.py", "sitecustomize.py", "gpu_decode.py", "thread_count_bits.py", "ray_trainer.py",
    "length_penalty.py",
}  # fmt: skip


def cited_texts(path: Path) -> list[str]:
    """The comments and docstrings (triple-quoted strings) of a Python file, the comment lines of a YAML
    or shell file: where a bare file name cites a file (a test's other strings name files it writes)."""
    if path.suffix != ".py":
        return comment_texts(path)
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    quoted = ('"""', "'''")
    return [
        t.string
        for t in tokens
        if t.type == tokenize.COMMENT or t.string.lstrip("rbuRBU").startswith(quoted)  # only strings start so
    ]


def repo_names(root: Path) -> set[str]:
    """Every file name in the repository: its top-level files and the files under its code and docs."""
    names = {p.name for p in root.iterdir() if p.is_file()}
    for d in (*CODE_DIRS, "docs"):
        names |= {p.name for p in files_under(root / d) if not ignored(p)}
    return names


@functools.cache
def the_repo_names() -> frozenset[str]:
    return frozenset(repo_names(ROOT))


def bad_bare_names(texts: list[str], where: str, names: set[str]) -> list[str]:
    """Each bare file name that `texts` cite and that no file of the repository (`names`) has."""
    return [
        f"{where}: cites {name}, which no file of the repository is named"
        for text in texts
        for name in BARE_NAME.findall(text)
        if name not in names and name not in PEER_FILES
    ]


# the tests of these checks plant bad citations on purpose
PLANTED = {ROOT / "tests/unit/test_citations.py", ROOT / "tests/unit/test_docs.py"}


def ignored(path: Path) -> bool:
    """Not the project's own: bytecode caches and virtual environments (benchmarks/.venv-trl)."""
    return any(part == "__pycache__" or part.startswith(".venv") for part in path.parts)


@functools.cache
def code_files() -> list[Path]:
    files = [p for d in CODE_DIRS for p in files_under(ROOT / d) if p.suffix in (".py", ".yaml", ".sh")]
    return sorted(set(files) - PLANTED)


@pytest.mark.parametrize("folder", CODE_DIRS)
def test_every_comment_cites_what_exists(folder: str) -> None:
    bad = []
    for path in code_files():
        if path.is_relative_to(ROOT / folder):
            bad += bad_citations(comment_texts(path), str(path.relative_to(ROOT)))
    assert bad == []


@pytest.mark.parametrize("folder", CODE_DIRS)
def test_every_bare_file_name_in_a_comment_exists(folder: str) -> None:
    """`plan.py` cited after plan.py was removed: a bare name has no path for the checks above."""
    names, bad = the_repo_names(), []
    for path in code_files():
        if path.is_relative_to(ROOT / folder):
            bad += bad_bare_names(cited_texts(path), str(path.relative_to(ROOT)), names)
    assert bad == []


def test_the_bare_name_check_finds_a_removed_file(tmp_path: Path) -> None:
    (tmp_path / "align_lab/train").mkdir(parents=True)
    (tmp_path / "align_lab/train/micro.py").touch()
    code = tmp_path / "align_lab/train/loop.py"
    code.write_text(
        '"""Micro-batches (micro.py), the plan\'s check (plan.py); verl\'s core_algos.py L1025."""\n'
        "# token_budget.py, train/micro.py, micro.pyc\n"
        "x = 'notes.py'  # a file this code writes: a plain string, not a citation\n"
    )
    names = repo_names(tmp_path)
    assert bad_bare_names(cited_texts(code), "loop.py", names) == [
        "loop.py: cites plan.py, which no file of the repository is named",
        "loop.py: cites token_budget.py, which no file of the repository is named",
    ]


# docs/spec.md is a verbatim copy (the last test); its paths are the peers' repositories'
DOCS = [*(p for p in PAGES if p != SPEC), ROOT / "benchmarks" / "RESULTS.md"]


@pytest.mark.parametrize("page", [*DOCS, ROOT / "README.md"], ids=lambda p: p.name)
def test_every_bare_file_name_in_a_docs_code_exists(page: Path) -> None:
    """A layout block's `run.py` after run.py moved: the docs' code spans and blocks name files bare."""
    bad = bad_bare_names(doc_texts(page)[1], str(page.relative_to(ROOT)), the_repo_names() | DOC_NAMES)
    assert bad == []


def test_the_bare_name_check_finds_a_moved_file_in_a_docs_layout(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "align_lab/run").mkdir(parents=True)
    (tmp_path / "align_lab/run/execute.py").touch()
    page = tmp_path / "docs/how.md"
    page.write_text(
        "# How\n\n```\nalign_lab/study/  run.py (one run)\n```\n\nSee `execute.py`; plan.py in prose.\n"
    )
    assert bad_bare_names(doc_texts(page)[1], "how.md", repo_names(tmp_path)) == [
        "how.md: cites run.py, which no file of the repository is named"
    ]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_doc_cites_what_exists(page: Path) -> None:
    lines, spans = doc_texts(page)
    where = str(page.relative_to(ROOT))
    assert bad_citations(lines, where, page=page) + bad_folder_spans(spans, where) == []


def test_the_spec_copy_is_the_shared_spec() -> None:
    if not SHARED_SPEC.exists():
        pytest.skip(f"no {SHARED_SPEC} beside the project root to compare docs/spec.md with")
    preface, marker, copy = SPEC.read_text().partition(SPEC_PREFACE_END)
    assert marker, f"docs/spec.md lost its line {SPEC_PREFACE_END.strip()}"
    assert copy == SHARED_SPEC.read_text(), "docs/spec.md differs from ../shared/algorithms.md: copy it again"


def test_the_checks_find_a_missing_section_file_and_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "align_lab/train").mkdir(parents=True)
    (tmp_path / "align_lab/train/micro.py").touch()
    (tmp_path / "docs/spec.md").write_text("# Spec\n\n## 1. Blocks\n\n### 1.3 Aggregation\n\n## 12. DPO\n")
    (tmp_path / "docs/algorithms.md").write_text("# Algorithms\n\n## How to add one\n")
    page = tmp_path / "docs/design.md"
    page.write_text(
        "# Design\n\n## 9. Floors\n\nSee section 9, then section 8.\n\nSlurm: see `reference/`.\n"
    )
    code = tmp_path / "align_lab/train/loop.py"
    code.write_text(
        '"""Aggregation (spec.md 1.3), DPO (spec.md sections 12-14), GRPO (spec section 9.1)."""\n'
        "# DAPO section 3.2; train/micro.py:chunks, train/absent.py, docs/spec.md, docs/gone.md, conf/algo/\n"
        "x = 'align_lab/study/'  # the loop (design.md section 9; algorithms.md 1.3; other.md 2)\n"
    )
    assert bad_citations(comment_texts(code), "loop.py", root=tmp_path) == [
        "loop.py: cites spec.md 12-14: no section 14 in spec.md",
        "loop.py: cites spec.md 9.1: no section 9.1 in spec.md",
        "loop.py: cites docs/gone.md, which does not exist",
        "loop.py: cites align_lab/train/absent.py, which does not exist",
        "loop.py: cites the folder conf/algo/, which does not exist",
        "loop.py: cites the folder align_lab/study/, which does not exist",
        "loop.py: cites algorithms.md 1.3: no section 1.3 in algorithms.md",
        "loop.py: cites other.md 2: no file other.md",
    ]
    lines, spans = doc_texts(page)
    assert bad_citations(lines, "design.md", root=tmp_path, page=page) == [
        "design.md: cites section 8: no such section on this page"
    ]
    assert bad_folder_spans(spans, "design.md", root=tmp_path) == [
        "design.md: names the folder `reference/`, which does not exist"
    ]
