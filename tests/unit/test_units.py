import datetime

import pytest

from clustrix import ConfigError
from clustrix._units import format_memory, format_time, parse_memory, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GB", 4 * 1024**3),
        ("4G", 4 * 1024**3),
        ("4GiB", 4 * 1024**3),
        ("4gb", 4 * 1024**3),
        ("512M", 512 * 1024**2),
        ("100mb", 100 * 1024**2),
        ("1.5G", 1536 * 1024**2),
        ("2T", 2 * 1024**4),
        ("64K", 64 * 1024),
    ],
)
def test_memory_units_are_powers_of_1024(text: str, expected: int) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["4X", "GB", "", "-1G", "0G", "four gigs"])
def test_bad_memory_names_the_value(bad: str) -> None:
    with pytest.raises(ConfigError, match="memory"):
        parse_memory(bad)


def test_memory_without_unit_is_refused() -> None:
    with pytest.raises(ConfigError, match="no unit"):
        parse_memory(4096)  # type: ignore[arg-type]


def test_format_memory_picks_the_largest_exact_unit() -> None:
    assert format_memory(4 * 1024**3) == "4G"
    assert format_memory(1536 * 1024**2) == "1536M"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1-02:00:00", 93600),
        ("00:10:00", 600),
        ("10:00", 600),
        ("90:00", 5400),
        ("1-02", 93600),
        ("2-00:30", 2 * 86400 + 1800),
        (datetime.timedelta(minutes=5), 300),
    ],
)
def test_time_formats(text: str | datetime.timedelta, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("bad", ["10", "abc", "00:61:00", "00:00:75", "0:00"])
def test_bad_time_is_refused_naming_the_value(bad: str) -> None:
    with pytest.raises(ConfigError, match=repr(bad).replace("(", r"\(")):
        parse_time(bad)


def test_bare_number_is_ambiguous() -> None:
    with pytest.raises(ConfigError, match="ambiguous"):
        parse_time("30")


def test_format_time_round_trips() -> None:
    for seconds in (59, 600, 3661, 93600):
        assert parse_time(format_time(seconds)) == seconds
