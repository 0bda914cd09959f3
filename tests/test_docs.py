"""The documentation tells the truth: its YAML validates; every command, key and metric is documented."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.cli import main
from prober.config import ConfigError, json_schema, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# The README and the reference site (docs/, built with MkDocs): what a user reads.
DOCS = README + "".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))


def yaml_blocks() -> list[tuple[str, bool]]:
    """Each YAML example, and whether it shows a mistake: `prober validate`'s errors follow it."""
    found = re.finditer(r"```yaml\n(.*?)```\s*(```console\n\$ prober validate)?", DOCS, flags=re.S)
    return [(m.group(1), m.group(2) is not None) for m in found]


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, flags=re.S)
    assert first_block is not None
    lines = [line for line in first_block.group(1).splitlines() if line.strip()]
    assert "prober demo" in lines[0]
    assert "scripts/test-all" in lines[1]
    assert "scripts/test-all" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize(("block", "mistaken"), yaml_blocks(), ids=lambda b: str(b).splitlines()[0][:40])
def test_documented_yaml_blocks_validate(block: str, mistaken: bool) -> None:
    data = yaml.safe_load(block)
    if not isinstance(data, dict) or "checks" not in data:
        pytest.skip("a fragment, not a whole checks.yaml")
    # Every variable it names is set: to a URL where it is a whole value (a webhook), else a word.
    env = {name: "t0ken" for name in re.findall(r"\$\{(\w+)\}", block)}
    env |= {name: "https://hooks.example.com/t0ken" for name in re.findall(r"[\"']\$\{(\w+)\}[\"']", block)}
    if mistaken:  # an example of what `prober validate` refuses
        with pytest.raises(ConfigError):
            parse_config(block, filename="docs", env=env)
    else:
        parse_config(block, filename="docs", env=env)


def test_repository_checks_yaml_validates() -> None:
    config = load_config(ROOT / "checks.yaml", env={})
    assert {c.surface for c in config.checks} == {"web", "mobile", "api"}


def test_schema_file_is_current() -> None:
    stored = json.loads((ROOT / "docs" / "checks.schema.json").read_text())
    assert stored == json_schema(), "run: prober schema > docs/checks.schema.json"


def test_every_command_is_documented() -> None:
    for name, command in main.commands.items():
        assert f"`prober {name}" in DOCS, f"prober {name} is not documented"
        for param in command.params:
            opts = [o for o in param.opts if o.startswith("-")]
            if opts and "--help" not in opts:
                assert any(re.search(rf"{re.escape(o)}\b", DOCS) for o in opts), f"prober {name} {opts[0]}"


def test_every_reason_is_documented() -> None:
    from prober.model import Reason

    for reason in Reason:
        assert f"| {reason.value} |" in DOCS or f"`{reason.value}`" in DOCS, reason


def schema_keys(node: Any, defs: dict[str, Any], seen: set[str]) -> set[str]:
    """Every property name of the JSON Schema under `node`, following references once."""
    keys: set[str] = set()
    if isinstance(node, list):
        for item in node:
            keys |= schema_keys(item, defs, seen)
    if not isinstance(node, dict):
        return keys
    ref = node.get("$ref", "").rsplit("/", 1)[-1]
    if ref and ref not in seen:
        seen.add(ref)
        keys |= schema_keys(defs[ref], defs, seen)
    for key, value in node.get("properties", {}).items():
        keys |= {key} | schema_keys(value, defs, seen)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
        keys |= schema_keys(node.get(key), defs, seen)
    return keys


def test_every_configuration_key_is_documented() -> None:
    schema = json_schema()
    keys = schema_keys(schema, schema.get("$defs", {}), set())
    assert len(keys) > 20
    missing = sorted(k for k in keys if f"`{k}" not in DOCS and f"{k}:" not in DOCS)
    assert not missing, f"configuration keys not documented: {missing}"


def test_every_metric_is_documented() -> None:
    import prober

    code = "".join(p.read_text() for p in Path(prober.__file__).parent.rglob("*.py"))
    # A metric is defined with its name, then its help text: ("prober_probes", "Probes made...").
    names = set(re.findall(r"[\"'](prober_[a-z_]+)[\"'],\s*[\"']", code))
    assert len(names) > 10
    missing = sorted(n for n in names if n not in DOCS)
    assert not missing, f"metrics not documented: {missing}"


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: every page in the navigation, no broken link or anchor."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "index.html").exists()


def test_every_docs_page_is_in_the_navigation() -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = {next(iter(entry.values())) for entry in nav}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages <= listed, f"pages missing from mkdocs.yml nav: {sorted(pages - listed)}"
