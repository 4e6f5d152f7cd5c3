"""Reading one TOML table of a profile: typed getters that name the key path they read.

A :class:`TableReader` wraps a table at a key path (``faults.events[1]``). Each getter checks
one key's type and range and raises ``ConfigError(file, key_path, expected)`` if it is wrong
or, when the default is :data:`REQUIRED`, missing; :meth:`TableReader.done` rejects the keys
no getter asked for, which is how unknown keys are caught at every depth.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .keys import join_key

#: Default of a key that must be present.
REQUIRED: Any = object()


def show(value: Any) -> str:
    """A value as an error message quotes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    return repr(value)


def is_number(value: Any) -> bool:
    """An int or float, not a bool, finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class TableReader:
    """One TOML table being read: typed getters that name the key path; leftovers are errors."""

    def __init__(self, file: str, path: str, data: Any):
        if not isinstance(data, Mapping):
            raise ConfigError(file, path, f"a table, got {show(data)}")
        self.file, self.path, self.data = file, path, data
        self._known: list[str] = []

    def key(self, name: str | int) -> str:
        return join_key(self.path, name)

    def error(self, name: str | int, expected: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), expected)

    def get(self, name: str, check: Callable[[Any], bool], what: str, default: Any) -> Any:
        """The value of ``name`` if ``check`` accepts it, else ConfigError saying ``what``."""
        self._known.append(name)
        if name not in self.data:
            if default is REQUIRED:
                raise self.error(name, f"{what} (required)")
            return default
        value = self.data[name]
        if not check(value):
            raise self.error(name, f"{what}, got {show(value)}")
        return value

    def integer(self, name: str, default: Any, minimum: int | None = None) -> int:
        what = "an integer" if minimum is None else f"an integer >= {minimum}"
        return self.get(name, lambda v: isinstance(v, int) and not isinstance(v, bool)
                        and (minimum is None or v >= minimum), what, default)

    def number(self, name: str, default: Any, *, positive: bool = False,
               unit: str = "") -> float | None:
        what = f"a{' positive' if positive else ''} number{unit}"
        value = self.get(name, lambda v: is_number(v) and (v > 0 or not positive), what, default)
        return None if value is None else float(value)

    def seconds(self, name: str, default: Any, *, positive: bool = False) -> float | None:
        """A duration or instant: never negative, and > 0 if ``positive``."""
        what = f"a number of seconds {'> 0' if positive else '>= 0'}"
        value = self.get(name, lambda v: is_number(v) and (v > 0 if positive else v >= 0),
                         what, default)
        return None if value is None else float(value)

    def string(self, name: str, default: Any, *, pattern: re.Pattern[str] | None = None,
               what: str = "a non-empty string") -> str:
        return self.get(name, lambda v: isinstance(v, str) and bool(v)
                        and (pattern is None or bool(pattern.fullmatch(v))), what, default)

    def choice(self, name: str, choices: Sequence[str], default: Any) -> str:
        return self.get(name, lambda v: v in choices and isinstance(v, str),
                        f"one of {', '.join(map(repr, choices))}", default)

    def boolean(self, name: str, default: Any) -> bool:
        return self.get(name, lambda v: isinstance(v, bool), "true or false", default)

    def array(self, name: str, default: Any, what: str = "an array") -> list[Any]:
        return list(self.get(name, lambda v: isinstance(v, (list, tuple)), what, default))

    def table(self, name: str) -> TableReader:
        """The sub-table ``name`` (empty if absent)."""
        self._known.append(name)
        return TableReader(self.file, self.key(name), self.data.get(name, {}))

    def done(self) -> None:
        """ConfigError for the first key no getter asked for."""
        for name in self.data:
            if name not in self._known:
                where = self.path or "the top level"
                raise self.error(name, f"no such key: {where} takes "
                                       f"{', '.join(sorted(set(self._known)))}")
