"""Turning user input into specs: TOML tables, `--set section.key=value` overrides,
per-framework override tables, and result files read back; every type error names
the key.

Stage: spec.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing

from compare.errors import UserError
from compare.spec.identity import FRAMEWORKS
from compare.spec.schema import SECTIONS, ExperimentSpec

# --- building specs from user input -------------------------------------------------


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def coerce(value, tp, key: str):
    """Check `value` against the annotation `tp`; return it in the field's type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except UserError as error:
                errors.append(error)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key} must be a list, got {value!r}")
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {_type_name(tp)} for {key}")


def replace_fields(instance, values: dict, where: str):
    """`dataclasses.replace` with unknown keys and wrong types reported by name."""
    hints = typing.get_type_hints(type(instance))
    known = [f.name for f in dataclasses.fields(instance)]
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise UserError(f"unknown key '{where}.{key}' (known: {', '.join(known)})")
        changes[key] = coerce(value, hints[key], f"{where}.{key}")
    return dataclasses.replace(instance, **changes)


def parse_value(text: str):
    """Parse an override's value as TOML (numbers, booleans, lists); else a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(experiment: ExperimentSpec, overrides: list[str]) -> ExperimentSpec:
    """Apply `section.key=value` overrides, e.g. `train.learning_rate=0.01`."""
    for override in overrides:
        path, sep, text = override.partition("=")
        section, dot, key = path.strip().partition(".")
        if not sep or not dot or not key:
            raise UserError(
                f"bad --set '{override}': use section.key=value, e.g. train.learning_rate=0.01"
            )
        if section not in SECTIONS:
            raise UserError(
                f"bad --set '{override}': unknown section '{section}' "
                f"(known: {', '.join(SECTIONS)})"
            )
        current = getattr(experiment, section)
        updated = replace_fields(current, {key: parse_value(text.strip())}, section)
        experiment = dataclasses.replace(experiment, **{section: updated})
    return experiment


def framework_overrides_from_dict(values, base: dict, where: str) -> dict:
    """Check a `framework_overrides` table ({framework: {section: {key: value}}}) and
    merge it over `base`; every unknown name or wrong type is an error naming the key."""
    if not isinstance(values, dict):
        raise UserError(f"{where}.framework_overrides must be a table")
    merged = {framework: dict(tables) for framework, tables in base.items()}
    for framework, tables in values.items():
        key = f"{where}.framework_overrides.{framework}"
        if framework not in FRAMEWORKS:
            raise UserError(f"unknown framework in '{key}' (known: {', '.join(FRAMEWORKS)})")
        if not isinstance(tables, dict):
            raise UserError(f"{key} must be a table of sections")
        for section, changes in tables.items():
            if section not in SECTIONS:
                raise UserError(f"unknown section '{key}.{section}' (known: {', '.join(SECTIONS)})")
            if not isinstance(changes, dict):
                raise UserError(f"{key}.{section} must be a table")
            # Coerce now, so a wrong type is reported when the study loads.
            checked = replace_fields(SECTIONS[section](), changes, f"{key}.{section}")
            coerced = {name: getattr(checked, name) for name in changes}
            merged.setdefault(framework, {})
            merged[framework][section] = {**merged[framework].get(section, {}), **coerced}
    return merged


def resolve(experiment: ExperimentSpec, framework: str) -> ExperimentSpec:
    """The experiment as `framework` runs it: its framework_overrides applied.

    The table itself stays in the result, so each side's spec records both sides'
    deliberate differences.
    """
    for section, changes in experiment.framework_overrides.get(framework, {}).items():
        where = f"framework_overrides.{framework}.{section}"
        updated = replace_fields(getattr(experiment, section), changes, where)
        experiment = dataclasses.replace(experiment, **{section: updated})
    return experiment


def experiment_from_dict(values: dict, base: ExperimentSpec, where: str) -> ExperimentSpec:
    """Build an experiment from a mapping of sections on top of `base`."""
    experiment = base
    for key, value in values.items():
        if key == "name":
            experiment = dataclasses.replace(experiment, name=coerce(value, str, f"{where}.name"))
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise UserError(f"{where}.{key} must be a table")
            section = replace_fields(getattr(experiment, key), value, f"{where}.{key}")
            experiment = dataclasses.replace(experiment, **{key: section})
        elif key == "framework_overrides":
            merged = framework_overrides_from_dict(value, experiment.framework_overrides, where)
            experiment = dataclasses.replace(experiment, framework_overrides=merged)
        else:
            known = ", ".join(["name", "base", *SECTIONS, "framework_overrides"])
            raise UserError(f"unknown key '{where}.{key}' (known: {known})")
    return experiment


def from_dict(cls, values: dict):
    """Rebuild a dataclass tree written by `dataclasses.asdict` (result files)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        value = values[field.name]
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value)
        elif typing.get_origin(tp) is tuple:
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)
