"""Merging layers into one nested dict while remembering where each value came from.

Tables merge key by key; any other value (arrays included) replaces the one
below it. Each leaf records its origin and the rank of its layer, so a table's
origin and the blame for an error can be found afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.config.keys import KeyPath
from flotilla.config.sources import DEFAULT_ORIGIN, Setting


@dataclass
class Merged:
    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[KeyPath, tuple[str, int]] = field(default_factory=dict)  # leaf -> (origin, rank)

    def origin_of(self, path: KeyPath) -> str:
        """Origin of a key, or of the most recent setting inside a table; "default" if unset."""
        return _latest(self.origins, path) or DEFAULT_ORIGIN

    def blame(self, path: KeyPath) -> str:
        """Origin to cite for a problem at `path`: the key itself, else its nearest set table."""
        for length in range(len(path), 0, -1):
            found = _latest(self.origins, path[:length])
            if found:
                return found
        return DEFAULT_ORIGIN


def _latest(origins: Mapping[KeyPath, tuple[str, int]], path: KeyPath) -> str | None:
    size = len(path)
    found = [value for key, value in origins.items() if key[:size] == path]
    return max(found, key=lambda item: item[1])[0] if found else None


def merge(layers: Iterable[Iterable[Setting]]) -> Merged:
    """Apply layers in order of precedence, lowest first."""
    merged = Merged()
    for rank, settings in enumerate(layers, start=1):
        for setting in settings:
            _assign(merged, setting, rank)
    return merged


def _assign(merged: Merged, setting: Setting, rank: int) -> None:
    path, value = setting.path, setting.value
    node = merged.data
    for depth, segment in enumerate(path[:-1], start=1):
        # An ancestor now certainly is a table: forget it as a leaf (scalar or empty table).
        merged.origins.pop(path[:depth], None)
        child = node.get(segment)
        if not isinstance(child, dict):
            child = node[segment] = {}
        node = child
    last = path[-1]
    if isinstance(value, dict) and not value and isinstance(node.get(last), dict):
        if not node[last]:
            merged.origins[path] = (setting.origin, rank)
        return  # an empty table over an existing one adds nothing
    for key in [key for key in merged.origins if key[: len(path)] == path]:
        del merged.origins[key]
    node[last] = copy.deepcopy(value)
    merged.origins[path] = (setting.origin, rank)
