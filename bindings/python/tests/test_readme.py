"""The Python snippets of README.md run as written."""

import re

import pytest

from support import PACKAGE_DIR

SNIPPETS = re.findall(r"```python\n(.*?)```", (PACKAGE_DIR / "README.md").read_text(), re.S)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs(snippet, capsys):
    exec(compile(snippet, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip()
    for expected in re.findall(r"# (b?'[^']*'|\d+)\s*$", snippet, re.M):
        assert expected.strip("b'") in printed
