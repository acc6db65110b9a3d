"""`when` conditions: a small, safe expression language over upstream stage outcomes.

Grammar (no eval, nothing else is accepted):

    expr  := and ('or' and)*
    and   := unary ('and' unary)*
    unary := 'not' unary | atom
    atom  := '(' expr ')' | 'always' | 'never' | 'any_failed' | 'all_succeeded'
           | STAGE '.' FLAG                       FLAG: succeeded failed skipped cancelled done
           | STAGE '.' FIELD ('==' | '!=') STRING  FIELD: outcome (an Outcome value), state

`any_failed` and `all_succeeded` look at every upstream stage (all ancestors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from flotilla.domain.errors import UsageError
from flotilla.domain.states import Outcome
from flotilla.domain.workflow import StageState


class ConditionError(UsageError):
    pass


FLAGS = ("succeeded", "failed", "skipped", "cancelled", "done")
FIELDS = ("outcome", "state")
KEYWORDS = ("always", "never", "any_failed", "all_succeeded")
_FIELD_VALUES: dict[str, tuple[str, ...]] = {
    "outcome": tuple(o.value for o in Outcome),
    "state": tuple(s.value for s in StageState),
}


@dataclass(frozen=True)
class ConditionContext:
    """What a condition can see: the upstream stages' states and outcomes."""

    states: Mapping[str, StageState]
    outcomes: Mapping[str, str]
    upstream: frozenset[str]


class Condition:
    def evaluate(self, ctx: ConditionContext) -> bool:
        raise NotImplementedError

    def stages(self) -> frozenset[str]:
        """The stage names this condition refers to."""
        return frozenset()


@dataclass(frozen=True)
class Const(Condition):
    value: bool

    def evaluate(self, ctx: ConditionContext) -> bool:
        return self.value


@dataclass(frozen=True)
class AnyFailed(Condition):
    def evaluate(self, ctx: ConditionContext) -> bool:
        return any(ctx.states.get(name) is StageState.FAILED for name in ctx.upstream)


@dataclass(frozen=True)
class AllSucceeded(Condition):
    def evaluate(self, ctx: ConditionContext) -> bool:
        return all(ctx.states.get(name) is StageState.SUCCEEDED for name in ctx.upstream)


@dataclass(frozen=True)
class Flag(Condition):
    stage: str
    flag: str

    def evaluate(self, ctx: ConditionContext) -> bool:
        state = ctx.states.get(self.stage, StageState.PENDING)
        if self.flag == "done":
            return state.is_terminal
        return state.value == self.flag

    def stages(self) -> frozenset[str]:
        return frozenset({self.stage})


@dataclass(frozen=True)
class Compare(Condition):
    stage: str
    field: str
    equal: bool
    value: str

    def evaluate(self, ctx: ConditionContext) -> bool:
        if self.field == "state":
            actual: str | None = ctx.states.get(self.stage, StageState.PENDING).value
        else:
            actual = ctx.outcomes.get(self.stage)
        return (actual == self.value) == self.equal

    def stages(self) -> frozenset[str]:
        return frozenset({self.stage})


@dataclass(frozen=True)
class Not(Condition):
    inner: Condition

    def evaluate(self, ctx: ConditionContext) -> bool:
        return not self.inner.evaluate(ctx)

    def stages(self) -> frozenset[str]:
        return self.inner.stages()


@dataclass(frozen=True)
class BoolOp(Condition):
    is_and: bool
    items: tuple[Condition, ...]

    def evaluate(self, ctx: ConditionContext) -> bool:
        if self.is_and:
            return all(item.evaluate(ctx) for item in self.items)
        return any(item.evaluate(ctx) for item in self.items)

    def stages(self) -> frozenset[str]:
        return frozenset().union(*(item.stages() for item in self.items))


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'[^']*'|"[^"]*")
      | (?P<op>==|!=|\(|\)|\.)
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str, int]] | str:
    """Tokens as (kind, value, column), or the error message."""
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while text[pos:].strip():
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            return f"bad `when` {text!r}: unexpected character at column {column}"
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent. Errors are data: the first one is kept and parsing stops."""

    def __init__(self, text: str, tokens: list[tuple[str, str, int]]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.error: str | None = None

    def _stop(self, message: str) -> Condition:
        if self.error is None:
            self.error = message
        self.pos = len(self.tokens)  # nothing more is consumed
        return Const(False)

    def _fail(self, expected: str) -> Condition:
        if self.pos < len(self.tokens):
            _, value, column = self.tokens[self.pos]
            found = f"{value!r} at column {column}"
        else:
            found = "the end"
        return self._stop(f"bad `when` {self.text!r}: expected {expected}, found {found}")

    def _peek(self) -> tuple[str, str] | None:
        if self.pos < len(self.tokens):
            kind, value, _ = self.tokens[self.pos]
            return kind, value
        return None

    def _take(self, kind: str, value: str | None = None) -> str | None:
        token = self._peek()
        if token and token[0] == kind and (value is None or token[1] == value):
            self.pos += 1
            return token[1]
        return None

    def parse(self) -> Condition | str:
        if not self.tokens:
            return "bad `when`: it is empty (use 'always' or remove it)"
        cond = self._or()
        if self.error is None and self.pos != len(self.tokens):
            self._fail("'and', 'or' or the end")
        return cond if self.error is None else self.error

    def _or(self) -> Condition:
        items = [self._and()]
        while self._take("name", "or"):
            items.append(self._and())
        return items[0] if len(items) == 1 else BoolOp(False, tuple(items))

    def _and(self) -> Condition:
        items = [self._unary()]
        while self._take("name", "and"):
            items.append(self._unary())
        return items[0] if len(items) == 1 else BoolOp(True, tuple(items))

    def _unary(self) -> Condition:
        if self._take("name", "not"):
            return Not(self._unary())
        return self._atom()

    def _atom(self) -> Condition:
        if self._take("op", "("):
            cond = self._or()
            if not self._take("op", ")"):
                return self._fail("')'")
            return cond
        token = self._peek()
        if token is None or token[0] != "name" or token[1] in ("and", "or", "not"):
            return self._fail("a condition such as 'test.failed' or 'always'")
        name = token[1]
        self.pos += 1
        if not self._take("op", "."):
            if name in ("always", "never"):
                return Const(name == "always")
            if name == "any_failed":
                return AnyFailed()
            if name == "all_succeeded":
                return AllSucceeded()
            return self._fail(f"'.' after stage {name!r} (as in '{name}.failed')")
        token = self._peek()
        attr = token[1] if token and token[0] == "name" else None
        if attr in FLAGS or attr in FIELDS:
            self.pos += 1
        if attr in FLAGS:
            return Flag(name, attr)
        if attr in FIELDS:
            return self._compare(name, attr)
        return self._fail("one of " + ", ".join(FLAGS + FIELDS))

    def _compare(self, stage: str, field: str) -> Condition:
        op = self._take("op", "==") or self._take("op", "!=")
        if op is None:
            return self._fail(f"'==' or '!=' after {stage}.{field}")
        literal = self._take("string")
        if literal is None:
            return self._fail("a quoted value such as 'tests_failed'")
        value = literal[1:-1]
        allowed = _FIELD_VALUES[field]
        if value not in allowed:
            return self._stop(
                f"bad `when` {self.text!r}: {field} {value!r} is not one of {', '.join(allowed)}"
            )
        return Compare(stage, field, op == "==", value)


@lru_cache(maxsize=1024)
def read_condition(text: str) -> Condition | str:
    """Parse a `when` expression: the Condition, or one line saying what is wrong where."""
    tokens = _tokenize(text)
    if isinstance(tokens, str):
        return tokens
    return _Parser(text, tokens).parse()


def parse_condition(text: str) -> Condition:
    """Parse a `when` expression, or raise ConditionError saying what is wrong where."""
    result = read_condition(text)
    if isinstance(result, str):
        raise ConditionError(result)
    return result
