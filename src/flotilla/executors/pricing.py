"""Token prices, to put a cost on usage from CLIs that print none (codex, gemini).

DEFAULT_PRICES is only a starting point: public list prices in USD per million
tokens at the time of writing. Users add or correct models in config:

    [prices."gpt-5.5"]
    input_per_mtok = 1.25
    output_per_mtok = 10.0
    cached_input_per_mtok = 0.125

A model matches a key exactly, or by prefix when the rest starts with "-" or
"@" (dated names such as `claude-sonnet-4-20250514`); the longest key wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from flotilla.domain.errors import UsageError
from flotilla.domain.events import Usage


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None  # None: cached input costs as much as input

    def to_dict(self) -> dict[str, float]:
        out = {"input_per_mtok": self.input_per_mtok, "output_per_mtok": self.output_per_mtok}
        if self.cached_input_per_mtok is not None:
            out["cached_input_per_mtok"] = self.cached_input_per_mtok
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Price:
        cached = raw.get("cached_input_per_mtok")
        return cls(
            float(raw["input_per_mtok"]),
            float(raw["output_per_mtok"]),
            None if cached is None else float(cached),
        )


DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5": Price(1.25, 10.0, 0.125),
    "gpt-5-mini": Price(0.25, 2.0, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.0, 8.0, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4o": Price(2.50, 10.0, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "o3": Price(2.0, 8.0, 0.50),
    "o4-mini": Price(1.10, 4.40, 0.275),
    # Anthropic (claude reports its own cost; these serve other front ends)
    "claude-opus-4": Price(15.0, 75.0, 1.50),
    "claude-opus-4-5": Price(5.0, 25.0, 0.50),
    "claude-sonnet-4": Price(3.0, 15.0, 0.30),
    "claude-haiku-4-5": Price(1.0, 5.0, 0.10),
    "claude-3-5-haiku": Price(0.80, 4.0, 0.08),
    # Google (prompts up to 200k tokens)
    "gemini-2.5-pro": Price(1.25, 10.0, 0.31),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.075),
    "gemini-2.5-flash-lite": Price(0.10, 0.40, 0.025),
    "gemini-2.0-flash": Price(0.10, 0.40, 0.025),
}


def find_price(model: str, prices: Mapping[str, Price]) -> Price | None:
    if model in prices:
        return prices[model]
    for key in sorted(prices, key=len, reverse=True):
        if model.startswith(key) and model[len(key)] in "-@":
            return prices[key]
    return None


def usage_cost(usage: Usage, price: Price) -> float:
    """USD for `usage` at `price`. `input_tokens` include the cached ones, as all adapters
    report them; the cached part is billed at the cached rate."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cached_rate = (
        price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    )
    total = (
        (usage.input_tokens - cached) * price.input_per_mtok
        + cached * cached_rate
        + usage.output_tokens * price.output_per_mtok
    )
    return total / 1_000_000


def cost_usd(usage: Usage, prices: Mapping[str, Price]) -> float | None:
    """The cost of `usage` at `prices`; None when its model is unknown or unpriced."""
    if usage.model is None:
        return None
    price = find_price(usage.model, prices)
    return None if price is None else usage_cost(usage, price)


def with_cost(usage: Usage, prices: Mapping[str, Price]) -> Usage:
    """`usage` with its cost filled in from `prices` when the CLI gave none."""
    if usage.cost_usd is not None:
        return usage
    return replace(usage, cost_usd=cost_usd(usage, prices))


def parse_prices(raw: Mapping[str, Any]) -> dict[str, Price]:
    """Prices from the config's `[prices."model"]` tables, on top of DEFAULT_PRICES."""
    prices = dict(DEFAULT_PRICES)
    for model, table in raw.items():
        if not isinstance(table, Mapping):
            raise UsageError(
                f'[prices."{model}"] must be a table with input_per_mtok and output_per_mtok'
            )
        try:
            price = Price.from_dict(table)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f'[prices."{model}"] needs numbers input_per_mtok and output_per_mtok '
                f"(and optionally cached_input_per_mtok): {exc}"
            ) from exc
        if min(price.to_dict().values()) < 0:
            raise UsageError(f'[prices."{model}"]: prices must not be negative')
        prices[model] = price
    return prices
