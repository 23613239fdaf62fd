"""A config file of the user's that is no YAML (an algo of their own under --config-dir, the route
docs/environments.md gives; a damaged conf/config.yaml) ended in a 103-123-line traceback (fresh hunt of
2026-12-04, s3_cfgdir_yaml): one line naming the file, its line and column, and YAML's word for it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from align_lab.error_lines import format_error


def test_a_yaml_error_is_one_line_naming_the_file_line_and_column(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("defaults:\n  - grpo\nlr: [[[\n")
    with pytest.raises(yaml.YAMLError) as e, open(path) as f:
        yaml.safe_load(f)
    assert format_error(e.value) == (
        f"{path} line 4 column 1: not valid YAML (expected the node content, but found '<stream end>'); "
        "fix the file"
    )


def test_the_command_says_it_for_a_config_dir_of_yours(tmp_path):
    (tmp_path / "algo").mkdir()
    (tmp_path / "algo" / "mine.yaml").write_text('lr: "abc\n')
    command = [sys.executable, "-m", "align_lab", "--config-dir", str(tmp_path), "algo=mine"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == (
        f"align_lab: error: {tmp_path / 'algo' / 'mine.yaml'} line 2 column 1: not valid YAML (found "
        "unexpected end of stream); fix the file\n"
    )
