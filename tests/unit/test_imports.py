"""The import-graph helper (tests/package_graph.py) that tests/unit/test_floors.py checks the package
with sees every import: a cycle hidden in a function body is still a cycle in the design (each module
needs the other to be read)."""

from __future__ import annotations

import pytest

from tests.package_graph import find_cycle, import_graph


def test_the_check_sees_a_cycle_hidden_in_a_function(tmp_path):
    # a imports b at the top; b imports a inside a function, relatively: still a cycle
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .a import g\n    return g\n")
    (pkg / "c.py").write_text("from pkg.sub.a import x\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.sub.a"}
    assert graph["pkg.c"] == {"pkg.sub.a"}
    assert sorted(find_cycle(graph) or []) == ["pkg.sub.a", "pkg.sub.a", "pkg.sub.b"]


@pytest.mark.parametrize("line", ["import pkg.b", "from pkg import b", "from . import b", "from .b import f"])
def test_every_import_form_is_an_edge(tmp_path, line):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(line + "\n")
    (pkg / "b.py").write_text("def f():\n    pass\n")
    assert import_graph(pkg)["pkg.a"] == {"pkg.b"}


def test_the_check_sees_a_cycle_across_two_packages(tmp_path):
    # as align_lab/app.py and the launcher's plan module once did (before align_lab/run/admission.py): each
    # imports the other
    for name in ("app", "plugins"):
        (tmp_path / name).mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "main.py").write_text("def f():\n    from plugins.plan import remember\n")
    (tmp_path / "plugins" / "plan.py").write_text("from app.main import f\n")
    graph = import_graph(tmp_path / "app", tmp_path / "plugins")
    assert graph["app.main"] == {"plugins.plan"} and graph["plugins.plan"] == {"app.main"}
    assert find_cycle(import_graph(tmp_path / "app")) is None  # one package alone cannot see it
    assert sorted(find_cycle(graph) or []) == ["app.main", "app.main", "plugins.plan"]
