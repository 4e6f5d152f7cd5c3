"""Profile key paths (``faults.events[1].target``) and the overrides that address them.

A key path is what a :class:`~loadgen.errors.ConfigError` names and what ``--set`` takes:
dot-separated TOML keys (quoted when not bare, e.g. ``slo."failover.p99".max``), each
optionally followed by ``[N]`` to index an array of tables. Overrides (``--set`` items and
command-line flags) replace the value at their path in the raw TOML tree, before validation.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Source names ConfigError gives for values that came from the command line.
SET_SOURCE = "--set"
FLAG_SOURCE = "command line"

Segment = str | int  # a table key, or an index into an array

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# One segment: a bare, "basic" or 'literal' key, then any [N] indexes; segments joined by '.'.
_SEGMENT = re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|'([^']*)')\s*((?:\[\d+\])*)""")
_INDEX = re.compile(r"\[(\d+)\]")
# A --set value that is not a TOML literal is taken as a string if it looks like one word.
_BARE_WORD = re.compile(r"""[^\s"'\[\]{},=#]+""")


def join_key(parent: str, key: Segment) -> str:
    """``parent`` extended by a table key (quoted if it is not bare) or an array index."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    part = key if _BARE_KEY.fullmatch(key) else json.dumps(key)
    return f"{parent}.{part}" if parent else part


def format_key(path: list[Segment] | tuple[Segment, ...]) -> str:
    """The canonical text of a parsed key path."""
    text = ""
    for segment in path:
        text = join_key(text, segment)
    return text


def parse_key(text: str, *, source: str = SET_SOURCE) -> tuple[Segment, ...]:
    """``a.b[2]."c.d"`` as ``("a", "b", 2, "c.d")``; ConfigError naming ``source`` if malformed."""
    path: list[Segment] = []
    pos = 0
    while True:
        match = _SEGMENT.match(text, pos)
        if not match or not any(match.group(i) is not None for i in (1, 2, 3)):
            raise ConfigError(source, text, "a key path such as workload.users, "
                                            "faults.events[0].at_s or slo.\"a.b\".max")
        bare, basic, literal, indexes = match.groups()
        if basic is not None:  # decode TOML escapes the way TOML itself does
            basic = tomllib.loads(f'k = "{basic}"')["k"]
        path.append(next(p for p in (bare, basic, literal) if p is not None))
        path.extend(int(i) for i in _INDEX.findall(indexes))
        pos = match.end()
        if pos == len(text):
            return tuple(path)
        if text[pos] != ".":
            raise ConfigError(source, text, f"'.' between keys at character {pos + 1}")
        pos += 1


def parse_value(text: str, *, key: str = "", source: str = SET_SOURCE) -> Any:
    """A TOML literal (``4``, ``"x"``, ``["a", "b"]``, ``{min = 1}``); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if _BARE_WORD.fullmatch(text):
            return text
        raise ConfigError(source, key, f"a TOML literal (4, 1.5, true, \"text\", [1, 2], "
                                       f"{{min = 1}}) or a bare word, got {text!r}") from None


def parse_set(item: str) -> tuple[tuple[Segment, ...], Any]:
    """One ``--set key.path=VALUE`` item as (path, value)."""
    key, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(SET_SOURCE, item.strip(), "key.path=VALUE")
    path = parse_key(key.strip())
    return path, parse_value(value.strip(), key=format_key(path))


def apply_override(tree: MutableMapping[str, Any], path: tuple[Segment, ...], value: Any,
                   *, source: str = SET_SOURCE) -> None:
    """Replace the value at ``path`` in ``tree``, creating missing tables on the way.

    An index must address an existing array element; a key below a value that is not a
    table is an error (ConfigError naming ``source``).
    """
    node: Any = tree
    for depth, segment in enumerate(path):
        last = depth == len(path) - 1
        where = format_key(path[:depth + 1])
        if isinstance(segment, int):
            if not isinstance(node, list) or segment >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ConfigError(source, where, f"an index below {size}: "
                                                 f"{format_key(path[:depth])} has {size} entries")
            if last:
                node[segment] = value
            else:
                node = node[segment]
            continue
        if not isinstance(node, MutableMapping):
            raise ConfigError(source, where, f"{format_key(path[:depth])} to be a table")
        if last:
            node[segment] = value
        else:
            node = node.setdefault(segment, {})


def came_from(key: str, origins: Mapping[str, str]) -> str | None:
    """The source of the latest override that set ``key``, a table holding it, or a key in it."""
    for path, source in reversed(list(origins.items())):
        if _within(key, path) or _within(path, key):
            return source
    return None


def _within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith((outer + ".", outer + "["))
