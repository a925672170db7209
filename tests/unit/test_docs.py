"""The manual's generated tables and keyword lists cannot drift from the code they describe."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from qzhou_eval import load_encoder
from qzhou_eval.option_table import ENCODER_OPTIONS
from qzhou_eval.option_table import markdown_table as options_table
from qzhou_eval.resolution.backends import markdown_table as backends_table

REPO = Path(__file__).resolve().parents[2]
README_LINES = 200


def _generated(page: str, source: str) -> str:
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    match = re.search(rf"<!-- generated: {re.escape(source)} -->\n(.*?)<!-- end generated -->", text, re.S)
    assert match, f"docs/{page} has no generated block from {source}"
    return match.group(1)


def test_the_options_page_is_the_option_table():
    assert _generated("options.md", "qzhou_eval.option_table.markdown_table") == options_table(), (
        "docs/options.md is stale: paste qzhou_eval.option_table.markdown_table() between its markers"
    )


def test_the_backends_page_is_the_capability_table():
    assert _generated("backends.md", "qzhou_eval.resolution.backends.markdown_table") == backends_table(), (
        "docs/backends.md is stale: paste qzhou_eval.resolution.backends.markdown_table() between its markers"
    )


def test_the_python_api_page_names_every_load_encoder_keyword():
    page = (REPO / "docs" / "python-api.md").read_text(encoding="utf-8")
    keywords = list(inspect.signature(load_encoder).parameters)
    missing = [k for k in keywords if f"`{k}`" not in page]
    assert not missing, f"docs/python-api.md does not mention load_encoder's keywords {missing}"
    assert {spec.name for spec in ENCODER_OPTIONS} <= set(keywords)


def test_the_readme_is_a_landing_page_whose_links_resolve():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_LINES, "the README is a landing page; the manual lives in docs/"
    for page in (REPO / "docs").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", text):
            assert (page.parent / target).is_file(), f"docs/{page.name} links to a missing page {target}"
    for target in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (REPO / target).exists(), f"README links to a missing {target}"
