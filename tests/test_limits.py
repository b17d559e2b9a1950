"""The memory budget a model file is held to: sizes parsed as written, a refusal before
allocating that names what and how much, and a budget set once reaching worker processes."""

from __future__ import annotations

import pytest

from harness.files import limits
from harness.model.protocol import NotSupported


@pytest.mark.parametrize(
    "text, expected",
    [("1024", 1024), ("2K", 2048), ("1.5M", 3 * 2**19), ("2G", 2**31), ("1GiB", 2**30)],
)
def test_sizes_read_as_written(text, expected):
    assert limits.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-1G", "2X", "G", "1e9"])
def test_bad_sizes_name_what_is_allowed(text):
    with pytest.raises(ValueError, match="allowed bytes"):
        limits.parse_size(text)


def test_over_the_budget_is_refused_naming_it(monkeypatch):
    monkeypatch.setenv(limits.ENV, "1M")
    limits.require(2**20, "exactly the budget")
    with pytest.raises(limits.Refused, match=r"initializer 'W' needs 2\.0 MiB, over .* 1\.0 MiB"):
        limits.require(2**21, "initializer 'W'")
    assert issubclass(limits.Refused, NotSupported)


def test_the_default_is_a_share_of_available_memory(monkeypatch):
    monkeypatch.delenv(limits.ENV, raising=False)
    available = limits.available_bytes()
    assert available > 0
    assert abs(limits.budget_bytes() - limits.DEFAULT_SHARE * available) < 0.05 * available


def test_set_budget_reaches_the_environment(monkeypatch):
    monkeypatch.setenv(limits.ENV, "1G")  # restored (removed) after the test
    limits.set_budget("3M")
    assert limits.budget_bytes() == 3 * 2**20


def test_a_negative_dimension_is_never_small():
    assert limits.elements_bytes([-1, 4], 4) > 2**62
    assert limits.elements_bytes([2, 3], 8) == 48
