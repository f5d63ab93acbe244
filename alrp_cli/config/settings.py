"""How one field of the training configuration is declared: its help, choices, bounds,
parsing and checks, written once in :mod:`alrp_cli.config.training`.

A field of a configuration group is a dataclass field made by :func:`setting`; its
metadata holds a :class:`Setting`. ``alrp train``'s options (their spelling, type, help
and per-preset defaults), the parsing of the list options and the checks of
:meth:`~alrp_cli.config.training.TrainConfig.validate` all read it. Nothing here imports
torch: ``alrp train --help`` reads it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alrp_cli.errors import UserError


@dataclass(frozen=True)
class Setting:
    """How a configuration field is offered and checked.

    ``option``: an option of ``alrp train`` (False: the run or the loss's recipe sets it);
    ``choices`` (or a function giving them); ``low``/``high`` bounds, ``open_low`` /
    ``open_high`` when the bound itself is refused; ``per_loss``: the COCO preset takes it
    from the loss's recipe; ``unset``: per preset, what resolves a value no preset gives
    (shown in the help); ``flag``: the option's spelling when it has a negative
    (``--amp/--no-amp``); ``path``: a file or folder (stored as text); ``parse``: the
    option's text to the value (list options); ``check``: a further problem of a value
    (None when fine).
    """

    help: str
    option: bool = True
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    per_loss: bool = False
    unset: Mapping[str, str] = field(default_factory=dict)
    flag: str | None = None
    path: bool = False
    parse: Callable[[str, str], Any] | None = None
    metavar: str | None = None
    check: Callable[[Any], str | None] | None = None

    def choice_values(self) -> tuple[str, ...] | None:
        """The choices (calling the function that gives them), or None."""
        return self.choices() if callable(self.choices) else self.choices

    def bounds_problem(self, value: float) -> str | None:
        """'must be > 0, got -1' when ``value`` is outside the bounds; None inside."""
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
        if low_ok and high_ok:
            return None
        return f"must be {self.bounds_text()}, got {value}"

    def bounds_text(self) -> str:
        """'> 0', '>= 1', 'in (0, 1]'."""
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"in {left}{self.low}, {self.high}{right}"


def setting(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with ``default`` and its :class:`Setting` (``help`` and
    ``kwargs``, the Setting's fields)."""
    return field(default=default, metadata={"setting": Setting(help, **kwargs)})


def setting_of(f: dataclasses.Field) -> Setting:
    """The :class:`Setting` of a field made by :func:`setting`."""
    return f.metadata["setting"]


def option_flag(name: str) -> str:
    """``--lr-steps`` for the field ``lr_steps``."""
    return "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def preset_note(name: str, s: Setting, presets: Mapping[str, Mapping[str, Any]]) -> str | None:
    """'[synthetic: 8; COCO: 100]' from ``presets`` (the COCO value 'per loss' when the
    loss's recipe sets it; ``s.unset`` for a preset that leaves it to the resolution);
    None when no preset sets the field."""
    shown = {}
    for preset, values in presets.items():
        label = "COCO" if preset == "coco" else preset
        if preset == "coco" and s.per_loss:
            shown[label] = "per loss (docs/training.md)"
        elif name in values:
            shown[label] = _shown(values[name])
        elif preset in s.unset:
            shown[label] = s.unset[preset]
    if not shown:
        return None
    if len(set(shown.values())) == 1 and len(shown) == len(presets):
        return f"[{next(iter(shown.values()))}]"
    return "[" + "; ".join(f"{label}: {text}" for label, text in shown.items()) + "]"


def option_help(name: str, s: Setting, presets: Mapping[str, Mapping[str, Any]]) -> str:
    """The help of the option: its text, its choices, its range (when bounded on both
    sides) and its per-preset defaults."""
    text = s.help.rstrip(".")
    choices = s.choice_values()
    if choices:
        text += f" ({' | '.join(choices)})"
    if s.low is not None and s.high is not None:
        text += f", {s.bounds_text()}"
    note = preset_note(name, s, presets)
    return text + (f" {note}" if note else "") + "."


def type_problem(value: Any, annotation: Any) -> str | None:
    """'expected int, got 'x'' when ``value`` does not have the field's type (a
    ``bool``/``int``/``float``/``str``, a ``list`` of them, or either or None); None when it
    does. An int passes for a float; a bool never passes for a number."""
    if _has_type(value, annotation):
        return None
    shown = str(annotation).replace("typing.", "").replace("builtins.", "")
    return f"expected {shown}, got {value!r}"


def _has_type(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def parse_numbers(text: str, option: str, kind: type, what: str) -> list[Any]:
    """``"0.75,0.95"`` -> ``[0.75, 0.95]`` (numbers of ``kind``); a UserError naming
    ``option`` and ``what`` the text should be otherwise."""
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"{option}: {text!r} is not {what}") from None
