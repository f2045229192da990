"""Printed and markdown tables: which way a table is laid out, and that a log file gets every cell whole."""

import io

import pytest
from rich.console import Console

from pairwise_rl.eval.report import MAX_SETUP_COLUMNS, orient, print_table


def _setups(n):
    return {f"setup_{i}": {"gold": 0.1 * i, "KL": 0.01 * i} for i in range(n)}


def test_a_few_setups_are_columns_and_many_are_rows():
    few = orient(_setups(MAX_SETUP_COLUMNS))
    assert list(few) == ["gold", "KL"] and list(few["gold"]) == [f"setup_{i}" for i in range(MAX_SETUP_COLUMNS)]
    many = orient(_setups(MAX_SETUP_COLUMNS + 1))
    assert list(many) == [f"setup_{i}" for i in range(MAX_SETUP_COLUMNS + 1)]
    assert many["setup_2"] == {"gold": pytest.approx(0.2), "KL": pytest.approx(0.02)}
    assert list(orient(_setups(2), "setups_as_rows")) == ["setup_0", "setup_1"]
    assert list(orient(_setups(9), "setups_as_columns")) == ["gold", "KL"]
    with pytest.raises(ValueError, match="sideways"):
        orient(_setups(2), "sideways")


def test_a_table_printed_to_a_file_keeps_every_cell_whole():
    out = io.StringIO()
    rows = {f"generative_rloo_group_{i}": {f"a long metric name {j}": 0.123456 for j in range(12)} for i in range(3)}
    print_table("wide", rows, console=Console(file=out, width=80))  # not a terminal: a log file
    text = out.getvalue()
    assert "…" not in text and "generative_rloo_group_2" in text and "a long metric name 11" in text
    assert text.count("0.123") == 36


def test_names_with_brackets_print_as_text_not_markup():
    """A sweep's setups are named 'traditional [ppo.kl.target=0.1]': rich read the label as a style tag and dropped
    it, so three budgets printed as three rows called 'traditional'."""
    out = io.StringIO()
    rows = {f"traditional [ppo.kl.target={t}]": {"KL [nats]": 0.1} for t in ("0.1", "1.0")}
    print_table("sweep [3 seeds]", rows, console=Console(file=out, width=80))
    text = out.getvalue()
    assert "traditional [ppo.kl.target=0.1]" in text and "traditional [ppo.kl.target=1.0]" in text
    assert "KL [nats]" in text and "sweep [3 seeds]" in text
