"""Graph algorithms over stage names: strongly connected components, cycles, order.

Pure and generic (names and their dependencies); `graph(spec)` caches the facts
of one WorkflowSpec, which is frozen and so hashable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from flotilla.domain.workflow import WorkflowSpec


@dataclass(frozen=True)
class Graph:
    deps: Mapping[str, tuple[str, ...]]  # stage -> its known dependencies (unknown ones dropped)
    ancestors: Mapping[str, frozenset[str]]
    cycles: tuple[tuple[str, ...], ...]  # each as a path that returns to its first stage
    order: tuple[str, ...]  # topological, ties in spec order; empty when there is a cycle


def _components(deps: Mapping[str, tuple[str, ...]], names: tuple[str, ...]) -> list[set[str]]:
    """Strongly connected components (Kosaraju, iterative so depth is unlimited)."""
    finished: list[str] = []
    visited: set[str] = set()
    for root in names:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(deps[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                finished.append(node)
                stack.pop()
            elif child not in visited:
                visited.add(child)
                stack.append((child, iter(deps[child])))
    reverse: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        for dep in deps[name]:
            reverse[dep].append(name)
    components: list[set[str]] = []
    assigned: set[str] = set()
    for root in reversed(finished):
        if root in assigned:
            continue
        component = {root}
        assigned.add(root)
        todo = [root]
        while todo:
            for other in reverse[todo.pop()]:
                if other not in assigned:
                    assigned.add(other)
                    component.add(other)
                    todo.append(other)
        components.append(component)
    return components


def _find_cycles(deps: Mapping[str, tuple[str, ...]], names: tuple[str, ...]) -> list[list[str]]:
    """One cycle per tangle (strongly connected component): the shortest through its
    earliest stage, as a path that returns to where it starts."""
    rank = {name: i for i, name in enumerate(names)}
    cycles: list[list[str]] = []
    for component in _components(deps, names):
        start = min(component, key=rank.__getitem__)
        if len(component) == 1 and start not in deps[start]:
            continue
        parent: dict[str, str] = {}
        queue = deque([start])
        path: list[str] = []
        while queue and not path:
            node = queue.popleft()
            for nxt in deps[node]:
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    break
                if nxt in component and nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        cycles.append([start, *reversed(path[:-1]), start] if len(path) > 1 else [start, start])
    cycles.sort(key=lambda cycle: rank[cycle[0]])
    return cycles


def _topological(deps: Mapping[str, tuple[str, ...]], names: tuple[str, ...]) -> list[str]:
    """Kahn's algorithm, always taking the earliest ready stage in spec order."""
    waiting = {name: len(set(deps[name])) for name in names}
    dependants: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        for dep in set(deps[name]):
            dependants[dep].append(name)
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(names):
        ready = next((n for n in names if n not in done and waiting[n] == 0), None)
        if ready is None:
            return []
        order.append(ready)
        done.add(ready)
        for child in dependants[ready]:
            waiting[child] -= 1
    return order


@lru_cache(maxsize=128)
def graph(spec: WorkflowSpec) -> Graph:
    """Graph facts of `spec` (first stage wins on duplicate names; unknown deps dropped)."""
    deps: dict[str, tuple[str, ...]] = {}
    for stage in spec.stages:
        deps.setdefault(stage.name, ())
    for stage in reversed(spec.stages):
        deps[stage.name] = tuple(d for d in dict.fromkeys(stage.depends_on) if d in deps)
    names = tuple(deps)
    ancestors: dict[str, frozenset[str]] = {}
    for name in names:
        found: set[str] = set()
        todo = list(deps[name])
        while todo:
            dep = todo.pop()
            if dep not in found:
                found.add(dep)
                todo.extend(deps[dep])
        found.discard(name)
        ancestors[name] = frozenset(found)
    cycles = tuple(tuple(c) for c in _find_cycles(deps, names))
    order = () if cycles else tuple(_topological(deps, names))
    return Graph(deps, ancestors, cycles, order)
