"""The documentation tells the truth: its YAML validates, every command is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from prober.cli import main
from prober.config import json_schema, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, flags=re.S)
    assert first_block is not None
    lines = [line for line in first_block.group(1).splitlines() if line.strip()]
    assert "prober demo" in lines[0]
    assert "scripts/test-all" in lines[1]
    assert "scripts/test-all" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("block", yaml_blocks(), ids=lambda b: b.splitlines()[0][:40])
def test_readme_yaml_blocks_validate(block: str) -> None:
    data = yaml.safe_load(block)
    if not isinstance(data, dict) or "checks" not in data:
        pytest.skip("a fragment, not a whole checks.yaml")
    parse_config(block, filename="README.md", env={"API_TOKEN": "t", "X_APP_BEARER": "t"})


def test_repository_checks_yaml_validates() -> None:
    config = load_config(ROOT / "checks.yaml", env={})
    assert {c.surface for c in config.checks} == {"web", "mobile", "api"}


def test_schema_file_is_current() -> None:
    stored = json.loads((ROOT / "docs" / "checks.schema.json").read_text())
    assert stored == json_schema(), "run: prober schema > docs/checks.schema.json"


def test_every_command_is_documented() -> None:
    for name, command in main.commands.items():
        assert f"`prober {name}" in README, f"prober {name} is not in the README"
        for param in command.params:
            opts = [o for o in param.opts if o.startswith("-")]
            if opts and "--help" not in opts:
                assert any(re.search(rf"{re.escape(o)}\b", README) for o in opts), f"prober {name} {opts[0]}"


def test_every_reason_is_documented() -> None:
    from prober.model import Reason

    for reason in Reason:
        assert f"| {reason.value} |" in README or f"`{reason.value}`" in README, reason
