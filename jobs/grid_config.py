"""The grid file of `halleval grid`: a base run config plus axes that expand to cells.

```yaml
name: alpha-beta
base: {model: {name: llava15}, method: {name: sgrs+locore}, benchmark: {...}, ...}
axes:                        # dotted RunConfig keys -> values; the cells are the product
  method.alpha: [0, 0.6]
  method.beta: [0, 0.15, 1.0]
  model: [{name: llava15, checkpoint: ...}, {name: qwen2_vl, checkpoint: ...}]
exclude:                     # optional: drop the cells matching every key of an entry
  - {model.name: qwen2_vl, method.beta: 0.15}
```

Each cell is an ordinary RunConfig (validated like a run file), so it has its own run id and
run folder: a finished cell is skipped on a re-run and a half-finished one resumes.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.config import ConfigError, RunConfig, build_config

# Keys that do not change what is generated (not in the run id): sweeping them would give
# cells with the same run id, so they belong in `base`.
# Keys outside the run id: cells differing only in them would share one run folder.
_NOT_SWEEPABLE = ("resources", "output_dir", "generation.batch_size", "scoring")


class GridConfig(BaseModel):
    """A grid file (see the module docstring); cells come from `cells()`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Grid name; its folder is <output_dir>/grids/<name>.")
    base: dict[str, Any] = Field(..., description="A run config (as in a run YAML) shared by every cell.")
    axes: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted RunConfig key -> values; the cells are their product."
    )
    exclude: list[dict[str, Any]] = Field(
        default_factory=list, description="Cells whose resolved values match every key of an entry are dropped."
    )

    @property
    def output_dir(self) -> Path:
        """The base's output_dir (before `--set` overrides)."""
        return Path(self.base.get("output_dir", RunConfig.model_fields["output_dir"].default))

    def cells(self, source: str = "grid", overrides: list[str] = ()) -> list[GridCell]:
        """Validated cells in axis order (first axis slowest), duplicates and exclusions dropped.

        Args:
            source: the file name, for messages.
            overrides: `key=value` changes to `base` (e.g. `benchmark.limit=50`), before the axes.

        Raises:
            ConfigError: an unknown or unsweepable axis key, an empty axis, or a cell that is not
                a valid run config (the message names the cell).
        """
        for key in list(self.axes) + [k for entry in self.exclude for k in entry]:
            check_key(key, source)
        for key, values in self.axes.items():
            if not values:
                raise ConfigError(f"{source}: axis '{key}' has no values")
        cells, seen = [], set()
        for combination in _product(list(self.axes.items())):
            axis_values = [f"{key}={json.dumps(value)}" for key, value in combination.items()]
            label = ", ".join(f"{k}={_label(v)}" for k, v in combination.items()) or "base"
            config = build_config(self.base, [*overrides, *axis_values], source=f"{source} (cell {label})")
            if config.run_id in seen or any(_matches(config, entry) for entry in self.exclude):
                continue
            seen.add(config.run_id)
            cells.append(GridCell({k: _label(v) for k, v in combination.items()}, config))
        if not cells:
            raise ConfigError(f"{source}: every cell is excluded")
        return cells


class GridCell(typing.NamedTuple):
    """One cell: its axis values (sections shown as compact labels) and its run config."""

    axes: dict[str, Any]
    config: RunConfig


def _product(axes: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    combinations: list[dict[str, Any]] = [{}]
    for key, values in axes:
        combinations = [{**done, key: value} for done in combinations for value in values]
    return combinations


def _label(value: Any) -> Any:
    """A section value (e.g. a whole `model`) as 'name:checkpoint'-like text; scalars unchanged."""
    if isinstance(value, dict):
        return ":".join(str(v) for v in value.values())
    if isinstance(value, list):
        return json.dumps(value)
    return value


def _resolved(config: RunConfig, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part, None)  # a parameter the cell's method does not have
    return node.model_dump(mode="json") if isinstance(node, BaseModel) else node


def _matches(config: RunConfig, entry: dict[str, Any]) -> bool:
    return all(_resolved(config, key) == value for key, value in entry.items())


def _sections(annotation: Any) -> list[type[BaseModel]]:
    """The config classes of a field's annotation (through `X | None` and unions such as the
    per-method parameter classes); empty for a leaf."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    return [option for option in options if isinstance(option, type) and issubclass(option, BaseModel)]


def check_key(key: str, source: str) -> None:
    """Raises ConfigError unless `key` is a dotted RunConfig key that changes the run id (for
    `method.*`, a parameter of some method; the cell's validation checks it fits its method)."""
    nodes: list[type[BaseModel]] = [RunConfig]
    path = []
    for part in key.split("."):
        if not nodes:
            raise ConfigError(f"{source}: unknown axis key '{key}': '{'.'.join(path)}' has no sub-keys")
        fields = {name: field for node in nodes for name, field in node.model_fields.items()}
        if part not in fields:
            names = [".".join(path + [name]) for name in fields]
            close = difflib.get_close_matches(".".join(path + [part]), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(names)}"
            raise ConfigError(f"{source}: unknown axis key '{key}'{hint}")
        path.append(part)
        nodes = [section for node in nodes if part in node.model_fields for section in _sections(node.model_fields[part].annotation)]
    if any(key == k or key.startswith(k + ".") for k in _NOT_SWEEPABLE):
        raise ConfigError(f"{source}: axis '{key}' does not change what is generated; set it in base")


def load_grid(path: str | Path, model: type[GridConfig] = GridConfig) -> GridConfig:
    """Reads and validates a grid file (or a subclass's file, e.g. a nightly suite).

    Raises:
        ConfigError: a missing file, bad YAML or a bad key, in one line naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; see configs/grids/ for examples")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error.__class__.__name__})") from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(p) for p in item["loc"]) or "(top level)"
            kind = {"extra_forbidden": "unknown key", "missing": "missing key"}.get(item["type"])
            problems.append(f"{kind} '{key}'" if kind else f"'{key}': {item['msg'].removeprefix('Value error, ')}")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None
