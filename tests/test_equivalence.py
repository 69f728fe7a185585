"""Output equivalence against the baseline: identical, late and early divergence."""

from __future__ import annotations

from inference_study.equivalence import compare, equivalence_table


def test_compare_counts_identical_requests_and_the_first_divergence() -> None:
    reference = [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert compare(reference, reference) == {"greedy_match_pct": 100.0, "first_divergence": None}
    assert compare([[1, 2, 3, 4], [5, 6, 0, 8]], reference) == {"greedy_match_pct": 50.0, "first_divergence": 2}
    assert compare([[1, 9, 3, 4], [5, 6, 0, 8]], reference) == {"greedy_match_pct": 0.0, "first_divergence": 1}


def test_table_pairs_each_cell_with_the_baseline_of_the_same_shape() -> None:
    base = [[1, 2, 3, 4, 5, 6, 7, 8]]
    outputs = {
        ("m", "hf_eager", 1, 16, 8): base,
        ("m", "hf_static_compiled", 1, 16, 8): base,
        ("m", "hf_compiled_loop", 1, 16, 8): [[1, 0, 3, 4, 5, 6, 7, 8]],  # diverges at 1 < 8 / 4
        ("m", "hf_compiled_loop", 2, 16, 8): [[1, 2, 3, 4, 5, 6, 7, 0]] * 2,  # no baseline cell: left out
    }
    table = equivalence_table(outputs, "hf_eager").set_index("backend")
    assert list(table.index) == ["hf_compiled_loop", "hf_static_compiled"]
    assert table.loc["hf_static_compiled", "greedy_match_pct"] == 100.0
    assert not table.loc["hf_static_compiled", "early_divergence"]
    assert table.loc["hf_compiled_loop", "first_divergence"] == 1
    assert table.loc["hf_compiled_loop", "early_divergence"]
