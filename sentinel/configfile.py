"""YAML config files -> validated pydantic models, for every program's config (run, train).

One loader so that every program reports a bad file the same way: FILE:LINE: key path = value:
message, one line per error; and one generator of the fully commented example files.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sentinel.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _yaml_lines(text: str) -> dict[tuple, int]:
    """Key path -> 1-based line of its value in the YAML text (for error messages)."""
    lines: dict[tuple, int] = {}

    def walk(node, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                walk(v, (*path, k.value))
                lines[(*path, k.value)] = k.start_mark.line + 1  # the key's line, not its value's
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _line(where: dict[tuple, int], loc: tuple) -> str:
    line = next((where[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in where), None)
    return f":{line}" if line else ""


def _format_errors(source: str, err: ValidationError, text: str | None = None) -> str:
    where = _yaml_lines(text) if text else {}
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"{source}{_line(where, loc)}: {key}{shown}: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse(model: type[M], data: Any, source: str = "config", text: str | None = None,
          elsewhere: dict[str, str] | None = None) -> M:
    """Validate `data` as `model`. `elsewhere` maps top-level keys that belong to another program's
    config to what to do about them: they get that message instead of a bare 'unexpected key'."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(data).__name__}")
    where = _yaml_lines(text) if text else {}
    foreign = [f"{source}{_line(where, (k,))}: {k}: {elsewhere[k]}" for k in data if k in (elsewhere or {})]
    if foreign:
        raise ConfigError("\n".join(foreign))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(source, e, text)) from None


def read(path: str | Path) -> tuple[Any, str]:
    """(parsed YAML, its text) of a config file; ConfigError naming the file and line otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror}); check the --config path") from None
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None


def _yaml_value(v: Any) -> str:
    if isinstance(v, tuple):
        v = list(v)
    return yaml.safe_dump(v, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def _field_docs(cls: type) -> dict[str, str]:
    """Field name -> description, for pydantic models and for our Annotated dataclasses."""
    if issubclass(cls, BaseModel):
        return {k: v.description or "" for k, v in cls.model_fields.items()}
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = {}
    for f in dataclasses.fields(cls):
        meta = getattr(hints[f.name], "__metadata__", ())
        docs[f.name] = next((m.description for m in meta if getattr(m, "description", None)), "")
    return docs


def _section_lines(value: Any, indent: str) -> list[str]:
    """One section's keys with their doc lines; a nested section (alerts.mqtt) indents further."""
    lines = []
    for key, doc in _field_docs(type(value)).items():
        lines.append(f"{indent}# {doc}")
        sub = getattr(value, key)
        if isinstance(sub, BaseModel):
            lines.append(f"{indent}{key}:")
            lines += _section_lines(sub, indent + "  ")
        else:
            lines.append(f"{indent}{key}: {_yaml_value(sub)}")
    return lines


def example_yaml(defaults: BaseModel, header: list[str], footer: list[str], skip: tuple[str, ...] = ()) -> str:
    """Every key of `defaults`' model with its doc line and default; `skip`ped top-level keys are
    left to the footer (e.g. commented source examples)."""
    lines = [*header, ""]
    for name, info in type(defaults).model_fields.items():
        if name in skip:
            continue
        value = getattr(defaults, name)
        lines.append(f"# {info.description}")
        if isinstance(value, (str, list)):
            lines += [f"{name}: {_yaml_value(value)}", ""]
            continue
        lines.append(f"{name}:")
        lines += _section_lines(value, "  ")
        lines.append("")
    return "\n".join([*lines, *footer, ""])
