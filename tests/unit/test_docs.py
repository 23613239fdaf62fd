"""The README and docs/ point at what exists: every relative link resolves to a file (and its #anchor to
a heading there), and every repository file that a command or a code span names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# top-level folders of the repository whose files the docs name by path from the root
TOP = ("align_lab", "benchmarks", "conf", "docs", "hydra_plugins", "scripts", "sweeps", "tests", ".ci")
REPO_PATH = re.compile(
    r"(?:^|(?<=[\s`'\"(=:,]))((?:"
    + "|".join(re.escape(t) for t in TOP)
    + r")/[\w./-]*\.(?:py|sh|yaml|md|toml|txt))"
)
AT_COMMIT = re.compile(r"[0-9a-f]{7,40}:$")  # `git show aed8269:benchmarks/x.py` names a file in history


def repo_paths(text: str) -> list[str]:
    """The repository files `text` names by path from the root, leaving out those named at a commit."""
    return [m.group(1) for m in REPO_PATH.finditer(text) if not AT_COMMIT.search(text[: m.start(1)])]


CONFIG_NAME = re.compile(r"--config-dir (\S+) --config-name ([\w./]+)")
MODULE = re.compile(r"python -m ((?:align_lab|benchmarks)(?:\.\w+)*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def split(text: str) -> tuple[list[str], list[str]]:
    """(prose lines, code-block lines) of a markdown text."""
    prose, code, inside = [], [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
        elif inside:
            code.append(line)
        else:
            prose.append(line)
    return prose, code


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    for line in split(page.read_text())[0]:
        if m := re.match(r"#{1,6} (.+)", line):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
    return {f"{base}-{i}" if i else base for base, n in seen.items() for i in range(n)}


def broken_links(page: Path) -> list[str]:
    """Each relative link of `page` whose file, or #anchor in it, does not exist."""
    broken = []
    for line in split(page.read_text())[0]:
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: link {target}: no file {path}")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.name}: link {target}: no heading #{anchor} in {file.name}")
    return broken


def missing_files(page: Path, root: Path = ROOT) -> list[str]:
    """Each repository file named in a code block or code span of `page` that does not exist."""
    prose, code = split(page.read_text())
    texts = code + [span for line in prose for span in re.findall(r"`([^`]+)`", line)]
    missing = []
    for text in texts:
        named = [p.rstrip(".") for p in repo_paths(text)]
        named += [f"{folder}/{name}.yaml" for folder, name in CONFIG_NAME.findall(text)]
        for module in MODULE.findall(text):
            stem = module.replace(".", "/")
            if not any((root / f).exists() for f in (f"{stem}.py", f"{stem}/__init__.py")):
                missing.append(f"{page.name}: `python -m {module}`: no module {stem}.py")
        for path in named:
            if not any(c in path for c in "<>*{}$") and not (root / path).exists():
                missing.append(f"{page.name}: names {path}, which does not exist")
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_a_command_names_exists(page: Path) -> None:
    assert missing_files(page) == []


def test_the_checks_find_a_broken_link_a_missing_anchor_and_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "align_lab").mkdir()
    (tmp_path / "align_lab/__init__.py").touch()
    (tmp_path / "docs/there.md").write_text("# A page\n\n## Its section: `key=1`\n")
    page = tmp_path / "docs/page.md"
    page.write_text(
        "# Page\n\n[ok](there.md#its-section-key1) [gone](nowhere.md) [bad anchor](there.md#nope)\n"
        "[self](#page) [web](https://example.org/x.md) `[not a link](x.md)`\n\n"
        "```bash\n# a comment is not a heading\npython benchmarks/absent.py  # and sweeps/<date>.yaml\n"
        "python -m align_lab --config-dir sweeps --config-name absent\n```\n"
        "Run `bash scripts/absent.sh`, then `python -m benchmarks.absent`.\n"
        "In history: `git show abc1234:sweeps/old.yaml`.\n"
    )
    assert broken_links(page) == [
        "page.md: link nowhere.md: no file nowhere.md",
        "page.md: link there.md#nope: no heading #nope in there.md",
    ]
    assert missing_files(page, root=tmp_path) == [
        "page.md: names benchmarks/absent.py, which does not exist",
        "page.md: names sweeps/absent.yaml, which does not exist",
        "page.md: names scripts/absent.sh, which does not exist",
        "page.md: `python -m benchmarks.absent`: no module benchmarks/absent.py",
    ]
    assert "a-comment-is-not-a-heading" not in anchors(page)


def bare_python_before_the_venv(text: str) -> str | None:
    """The first command of a page's code blocks that calls a bare `python` before any block line has
    activated the venv (`source .venv/bin/activate`); None when there is none."""
    for line in split(text)[1]:
        command = line.split("#")[0].strip()
        if command.startswith("source .venv/bin/activate"):
            return None
        if re.match(r"python3? ", command):
            return command
    return None


def test_the_readme_runs_as_written_on_a_fresh_clone() -> None:
    """Without the venv a bare `python` has no align_lab (issue 37 item 7): the README's commands before
    `source .venv/bin/activate` call .venv/bin/python."""
    assert bare_python_before_the_venv((ROOT / "README.md").read_text()) is None
    page = "```bash\nbash scripts/setup.sh\npython -m align_lab  # the default\n```\n"
    assert bare_python_before_the_venv(page) == "python -m align_lab"
    activated = page.replace("bash scripts", "source .venv/bin/activate\nbash scripts")
    assert bare_python_before_the_venv(activated) is None


def test_the_readmes_group_table_counts_the_algo_choices_and_lists_every_other_users_group():
    """Fortieth hunt, case 42: the README said 37 algo choices where conf/algo holds 38, and had no `env`
    row. The internal groups (algo_on_model: a model's specialisation; algo_shared: parts) are no choice."""
    import re

    readme = (ROOT / "README.md").read_text()
    algos = len(list((ROOT / "conf" / "algo").glob("*.yaml")))
    assert f"| `algo` | {algos} choices," in readme
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|", readme, flags=re.M))
    for group in sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir()):
        if group in ("algo", "algo_on_model", "algo_shared"):
            continue
        listed = re.findall(r"`(\w+)`", rows.get(group, ""))
        assert sorted(listed) == sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")), group
