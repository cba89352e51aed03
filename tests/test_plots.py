import pytest

from keras_memory.plots import cost_by_document_length, plot_cost_by_document_length


def intervals(costs, interval_tokens=2048, first_end=4096):
    return [
        {
            "tokens": first_end + i * interval_tokens,
            "interval_tokens": interval_tokens,
            "seconds_per_1k_tokens": cost,
            "rss_bytes": 2**30 + i * 2**20,
        }
        for i, cost in enumerate(costs)
    ]


def test_a_documents_cost_is_the_token_weighted_mean_of_the_intervals_it_spans():
    # Intervals end at 4k, 6k, ..., 18k tokens.
    records = intervals([1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 9.0, 9.0])
    # 16k: the seven intervals ending at 4k..16k; the last one (18k) is left out.
    assert cost_by_document_length(records) == {4096: 1.0, 16384: pytest.approx(25 / 7)}
    uneven = [dict(records[0], interval_tokens=1024), *records[1:2]]
    assert cost_by_document_length(uneven, lengths=[6144]) == {6144: pytest.approx(7.0 / 3.0)}
    assert cost_by_document_length(records, lengths=[1024]) == {}  # no interval ends by then


def test_the_length_plot_is_written(tmp_path):
    path = str(tmp_path / "cost.png")
    runs = {"xl": intervals([1.0] * 8), "melodi": intervals([2.0] * 8)}
    assert plot_cost_by_document_length(runs, path, title="t") == path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
