"""Scenarios: experiments with their own workloads and measurements beyond the latency/throughput sweep.

Each scenario has typed settings (`settings.py`), a versioned result record (`records.py`), a runner
registered in `RUNNERS`, and a report section (`report.py`). Its result is a `results.ScenarioResult`:
the common header of a cell result plus the scenario's record.
"""
