"""The docs that describe code stay complete: every config key and Parquet column is documented,
and README's test command is the one CI runs."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from pipeline.config import RunConfig
from pipeline.schema import GENERATION_SCHEMA

from conftest import REPO_ROOT


def _config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        # A section, or a union of sections (each method's parameters): every member's keys.
        members = typing.get_args(field.annotation) or (field.annotation,)
        sections = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if sections:
            for section in sections:
                keys += [key for key in _config_keys(section, f"{prefix}{name}.") if key not in keys]
        else:
            keys.append(prefix + name)
    return keys


def test_every_config_key_is_documented():
    text = (REPO_ROOT / "docs" / "config.md").read_text()
    missing = [key for key in _config_keys(RunConfig) if f"`{key}`" not in text]
    assert not missing, f"add these keys to docs/config.md: {missing}"


def test_every_parquet_column_is_documented():
    text = (REPO_ROOT / "docs" / "schema.md").read_text()
    missing = [name for name in GENERATION_SCHEMA.names if f"`{name}`" not in text]
    assert not missing, f"add these columns to docs/schema.md: {missing}"


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, flags=re.S)
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "halleval demo" in demo and "pytest" in tests
    test_command = tests.split("&&")[-1].strip()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines(), f"CI must run README's test command: {test_command}"
    assert "scripts/setup.sh" in ci
