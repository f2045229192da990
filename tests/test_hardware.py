"""What machine this is: CPU-type labels, the threads each side-by-side job gets, and mixed types in a comparison."""

import logging

import pytest

from pairwise_rl import hardware
from pairwise_rl.stages.compare import machine_note


def test_the_cpu_type_names_the_widest_vector_unit_the_cpu_reports():
    zen4 = frozenset({"avx2", "avx512f", "avx512_bf16"})
    assert hardware.cpu_type(zen4, "AMD EPYC", "25", "17") == "AMD EPYC (family 25 model 17; avx512_bf16)"
    assert hardware.cpu_type(frozenset({"avx2"}), "AMD EPYC", "25", "1") == "AMD EPYC (family 25 model 1; avx2)"
    assert hardware.cpu_type(frozenset({"avx512f", "amx_bf16"}), "Xeon", "6", "143").endswith("; amx_bf16)")
    assert hardware.cpu_type(frozenset(), "Old", "6", "1").endswith("; no avx2)")


def test_this_machine_is_recorded_with_the_flags_that_matter():
    record = hardware.machine()
    assert set(record["flags"]) == set(hardware.FLAGS_THAT_MATTER)
    assert record["usable_cores"] == hardware.usable_cores() >= 1
    assert record["cpu"] and record["torch_cpu_capability"]


def test_threads_per_job_keeps_jobs_times_threads_within_the_cores(monkeypatch):
    monkeypatch.setattr(hardware, "usable_cores", lambda: 8)
    assert [hardware.threads_per_job(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert hardware.threads_per_job(-1) == 1   # joblib: one job per core
    assert hardware.threads_per_job(-2) == 1   # all cores but one: 7 jobs
    assert hardware.threads_per_job(-5) == 2   # 4 jobs
    with pytest.raises(ValueError, match="n_jobs"):
        hardware.threads_per_job(0)


def test_compare_names_the_machine_and_warns_when_runs_mix_cpu_types(caplog):
    zen4, zen3 = {"cpu": "AMD EPYC (family 25 model 17; avx512_bf16)"}, {"cpu": "AMD EPYC (family 25 model 1; avx2)"}
    assert machine_note([{"machine": zen4}, {"machine": zen4}]) == f"Machine: {zen4['cpu']}."
    assert machine_note([{}]).startswith("Machine: not recorded")
    with caplog.at_level(logging.WARNING):
        note = machine_note([{"machine": zen4}, {"machine": zen3}, {}])
    assert "mixed CPU types" in note and zen3["cpu"] in note and zen4["cpu"] in note
    assert "2 CPU types" in caplog.text
