"""Load-test scenarios. `catalog` holds their definitions and imports nothing from locust,
so the benchmark runner (an asyncio process) can read them; `users` holds the locust users
that play them and is imported only by `loadtest/locustfile.py`, inside locust's process
(importing locust monkey-patches the standard library for gevent)."""

from loadtest.scenarios.catalog import SCENARIOS, Scenario, scenario_names

__all__ = ["SCENARIOS", "Scenario", "scenario_names"]
