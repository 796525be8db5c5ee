"""tools.cli.units: parsing of bandwidths, durations and sizes as people type them, and the formatters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.cli.units import format_bps, format_bytes, format_ns, parse_bandwidth, parse_duration, parse_size


@pytest.mark.parametrize("text, bps", [
    ("2G", 2 * 10**9), ("2Gbps", 2 * 10**9), ("2 Gb/s", 2 * 10**9), ("2gbit", 2 * 10**9),
    ("2Gbit/s", 2 * 10**9), ("500M", 500 * 10**6), ("500mbps", 500 * 10**6), ("1.5 Gb/s", 15 * 10**8),
    ("100k", 10**5), ("100K", 10**5), ("1T", 10**12), ("1000", 1000), ("1000bps", 1000), ("0", 0),
    (" 2G ", 2 * 10**9), ("1e9", 10**9), (".5G", 5 * 10**8), ("10_000", 10**4), (2500, 2500),
])
def test_parse_bandwidth(text, bps):
    assert parse_bandwidth(text) == bps


@pytest.mark.parametrize("text, ns", [
    ("30ms", 30 * 10**6), ("250us", 250_000), ("20µs", 20_000), ("20μs", 20_000), ("1.5s", 15 * 10**8),
    ("100ns", 100), ("100", 100), ("2 ms", 2 * 10**6), ("1US", 1000), ("0.5ms", 500_000), (7, 7),
])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text, n", [
    ("1500", 1500), ("1500B", 1500), ("1500 bytes", 1500), ("64KiB", 65536), ("64kib", 65536),
    ("1MB", 10**6), ("1kB", 1000), ("1KB", 1000), ("1MiB", 2**20), ("1.5kB", 1500), ("2GiB", 2 * 2**30),
])
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("parse, text, words", [
    (parse_bandwidth, "2GB", "not bytes"),
    (parse_bandwidth, "2GBps", "not bytes"),
    (parse_bandwidth, "2 ms", "unknown unit 'ms'"),
    (parse_bandwidth, "fast", "expected a number"),
    (parse_bandwidth, "-1G", "negative"),
    (parse_bandwidth, "1.5", "whole number of bit/s"),
    (parse_bandwidth, "", "expected a number"),
    (parse_bandwidth, "1e30", "too large"),
    (parse_duration, "1.5ns", "whole number of ns"),
    (parse_duration, "3 min", "unknown unit 'min'"),
    (parse_duration, "ms", "expected a number"),
    (parse_duration, "-5ms", "negative"),
    (parse_size, "1500b", "'b' means bits"),
    (parse_size, "1kb", "'b' means bits"),
    (parse_size, "3 pages", "unknown unit 'pages'"),
    (parse_size, "0.5", "whole number of bytes"),
])
def test_errors_quote_the_text(parse, text, words):
    with pytest.raises(ValueError) as e:
        parse(text)
    msg = str(e.value)
    assert repr(text) in msg and words in msg
    assert "\n" not in msg


@pytest.mark.parametrize("parse", [parse_bandwidth, parse_duration, parse_size])
@pytest.mark.parametrize("bad", [None, 1.5, True, [1]])
def test_non_text_is_refused(parse, bad):
    with pytest.raises(ValueError):
        parse(bad)


@pytest.mark.parametrize("bps, text", [
    (2 * 10**9, "2 Gb/s"), (15 * 10**8, "1.5 Gb/s"), (500 * 10**6, "500 Mb/s"), (10**5, "100 kb/s"),
    (999, "999 b/s"), (0, "0 b/s"), (None, "unlimited"),
])
def test_format_bps(bps, text):
    assert format_bps(bps) == text


@pytest.mark.parametrize("ns, text", [
    (30 * 10**6, "30 ms"), (1500, "1.5 us"), (12, "12 ns"), (25 * 10**8, "2.5 s"), (None, "-"),
])
def test_format_ns(ns, text):
    assert format_ns(ns) == text


def test_format_bytes():
    assert format_bytes(1500) == "1500 B"
    assert format_bytes(250_000) == "250 kB"
    assert format_bytes(None) == "-"


@given(st.integers(min_value=1, max_value=999), st.integers(min_value=0, max_value=12))
def test_round_numbers_round_trip_exactly(mantissa, exponent):
    bps = mantissa * 10**exponent
    assert parse_bandwidth(format_bps(bps).replace(" ", "")) == bps
    ns = mantissa * 10**min(exponent, 9)
    assert parse_duration(format_ns(ns).replace(" ", "")) == ns


@given(st.integers(min_value=1, max_value=10**15))
def test_any_rate_round_trips_within_display_precision(bps):
    back = parse_bandwidth(format_bps(bps))
    assert abs(back - bps) <= bps * 5e-4
