"""mmcv configurations read without running them: a config file with its ``_base_`` files,
or the config text mmdetection stores in a checkpoint (``meta['config']``).

Both are Python source made of assignments (``model = dict(type='RetinaNet', ...)``).
mmcv executes them; here they are parsed with :mod:`ast` and only literals are evaluated:
numbers, strings, ``None``/``True``/``False``, lists, tuples, dict literals, ``dict(...)``
calls (with ``**other``), names assigned earlier in the same file, subscripts of those, ``+``
and unary ``-``. No code runs, and mmcv is not needed. A value built any other way (e.g.
``gpu_ids = range(0, 4)`` in a stored config) is kept as :class:`Unsupported` and is an
error only if it is used. ``_base_`` files are merged as mmcv's ``Config.fromfile`` merges
them: bases in order, then the file itself, dicts merged key by key unless the file says
``_delete_=True``, everything else replaced.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alrp_cli.errors import UserError

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


@dataclass(frozen=True)
class Unsupported:
    """A config value this reader does not evaluate (its source text, for the message)."""

    source: str


class _NotLiteral(Exception):
    pass


def _evaluate(node: ast.AST, names: dict[str, Any]) -> Any:
    """The value of ``node`` from literals and ``names``; _NotLiteral for anything else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        items = [_evaluate(e, names) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # {**other}
                out.update(_mapping(_evaluate(value, names)))
            else:
                out[_evaluate(key, names)] = _evaluate(value, names)
        return out
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
    ):
        out = {}
        for kw in node.keywords:
            if kw.arg is None:  # dict(**other)
                out.update(_mapping(_evaluate(kw.value, names)))
            else:
                out[kw.arg] = _evaluate(kw.value, names)
        return out
    if isinstance(node, ast.Name) and node.id in names:
        value = names[node.id]
        if isinstance(value, Unsupported):
            raise _NotLiteral
        return value
    if isinstance(node, ast.Subscript):
        container = _evaluate(node.value, names)
        try:
            return container[_evaluate(node.slice, names)]
        except (KeyError, IndexError, TypeError):
            raise _NotLiteral from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, names)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, names), _evaluate(node.right, names)
        try:
            return _BINARY[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError):
            raise _NotLiteral from None
    raise _NotLiteral


def _mapping(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _NotLiteral
    return value


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    """The variables an mmcv config source assigns, evaluated as literals (see the module).

    ``source`` names the text in messages. A text that is not Python, or assigns nothing,
    is a UserError; names starting with ``__`` and statements other than plain assignments
    (imports, a docstring) are skipped, as mmcv skips them.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise UserError(f"{source}: not an mmcv config (line {err.lineno}: {err.msg})") from None
    names: dict[str, Any] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        try:
            value: Any = _evaluate(node.value, names)
        except _NotLiteral:
            value = Unsupported(ast.get_source_segment(text, node.value) or "?")
        for target in node.targets:
            if isinstance(target, ast.Name) and not target.id.startswith("__"):
                names[target.id] = value
    if not names:
        raise UserError(f"{source}: not an mmcv config (it assigns no settings)")
    return names


def merge(child: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base`` as mmcv's ``Config._merge_a_into_b``: a dict merges into a
    dict key by key (``_delete_=True`` replaces it instead), any other value replaces."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict):
            value = dict(value)
            replace = value.pop(DELETE_KEY, False)
            if not replace and isinstance(out.get(key), dict):
                value = merge(value, out[key])
        out[key] = value
    return out


def load_config_file(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """An mmcv config file with its ``_base_`` files (relative to it) merged in."""
    path = Path(path)
    if path.resolve() in _seen:
        raise UserError(f"{path}: includes itself through _base_")
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected an mmdetection config file") from None
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read the config ({err})") from None
    names = parse_config_text(text, str(path))
    bases = names.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise UserError(f"{path}: _base_ must be a file name or a list of them")
    merged: dict[str, Any] = {}
    for base in bases:
        loaded = load_config_file(path.parent / base, _seen=(*_seen, path.resolve()))
        twice = sorted(set(merged) & set(loaded))
        if twice:  # mmcv refuses the same key in two bases
            raise UserError(f"{path}: {twice[0]!r} is set by two of its _base_ files")
        merged.update(loaded)
    return merge(names, merged)


def setting(cfg: dict[str, Any], dotted: str, default: Any = None, *, source: str) -> Any:
    """``cfg['a']['b']`` for ``dotted`` 'a.b' (``default`` when a part is missing); a value
    the reader could not evaluate is a UserError naming it and ``source``."""
    value: Any = cfg
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    if isinstance(value, Unsupported):
        raise UserError(f"{source}: {dotted} = {value.source} is not a plain value")
    return value
