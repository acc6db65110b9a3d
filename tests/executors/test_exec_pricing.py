"""Price table: matching model names and computing costs."""

from __future__ import annotations

import pytest

from flotilla.domain.errors import UsageError
from flotilla.domain.events import Usage
from flotilla.executors.pricing import (
    DEFAULT_PRICES,
    Price,
    cost_usd,
    find_price,
    parse_prices,
    with_cost,
)

PRICES = {
    "gpt-5": Price(1.25, 10.0, 0.125),
    "gpt-5-mini": Price(0.25, 2.0),
    "claude-sonnet-4": Price(3.0, 15.0, 0.3),
}


def test_exact_dated_and_longest_prefix_match() -> None:
    assert find_price("gpt-5", PRICES) is PRICES["gpt-5"]
    assert find_price("gpt-5-2025-08-07", PRICES) is PRICES["gpt-5"]
    assert find_price("gpt-5-mini-2025-08-07", PRICES) is PRICES["gpt-5-mini"]
    assert find_price("claude-sonnet-4-20250514", PRICES) is PRICES["claude-sonnet-4"]
    assert find_price("claude-sonnet-4@20250514", PRICES) is PRICES["claude-sonnet-4"]


def test_a_prefix_without_separator_does_not_match() -> None:
    assert find_price("gpt-5.5", PRICES) is None  # a different model, not a dated gpt-5
    assert find_price("gpt-50", PRICES) is None
    assert find_price("gpt", PRICES) is None


def test_cost_bills_cached_input_at_the_cached_rate() -> None:
    usage = Usage(
        input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000, model="gpt-5"
    )
    # 600k fresh at 1.25 + 400k cached at 0.125 + 100k out at 10
    assert cost_usd(usage, PRICES) == pytest.approx(0.75 + 0.05 + 1.0)


def test_cached_rate_defaults_to_input_rate() -> None:
    usage = Usage(input_tokens=2_000_000, cached_input_tokens=1_000_000, model="gpt-5-mini")
    assert cost_usd(usage, PRICES) == pytest.approx(0.5)


def test_unknown_or_missing_model_has_no_cost() -> None:
    assert cost_usd(Usage(input_tokens=10, model="mystery-1"), PRICES) is None
    assert cost_usd(Usage(input_tokens=10), PRICES) is None


def test_with_cost_keeps_a_cli_figure_and_fills_a_missing_one() -> None:
    own = Usage(input_tokens=10, cost_usd=0.5, model="gpt-5")
    assert with_cost(own, PRICES) is own
    filled = with_cost(Usage(output_tokens=1_000_000, model="gpt-5"), PRICES)
    assert filled.cost_usd == pytest.approx(10.0)


def test_defaults_cover_the_documented_test_models() -> None:
    for model in ("gemini-2.5-pro", "gpt-5", "claude-sonnet-4-5-20250929"):
        assert find_price(model, DEFAULT_PRICES) is not None


def test_config_prices_override_and_extend_defaults() -> None:
    prices = parse_prices(
        {
            "gpt-5": {"input_per_mtok": 1, "output_per_mtok": 2},
            "gpt-5.5": {"input_per_mtok": 2, "output_per_mtok": 20, "cached_input_per_mtok": 0.2},
        }
    )
    assert prices["gpt-5"] == Price(1.0, 2.0, None)
    assert prices["gpt-5.5"].cached_input_per_mtok == 0.2
    assert "gemini-2.5-pro" in prices
    assert Price.from_dict(prices["gpt-5.5"].to_dict()) == prices["gpt-5.5"]


@pytest.mark.parametrize(
    "table",
    [
        {"input_per_mtok": 1},
        {"input_per_mtok": "cheap", "output_per_mtok": 1},
        {"input_per_mtok": -1, "output_per_mtok": 1},
        "not a table",
    ],
)
def test_bad_config_prices_are_usage_errors(table: object) -> None:
    with pytest.raises(UsageError, match=r'\[prices\."m"\]'):
        parse_prices({"m": table})
