"""The load model, without Locust: workload settings, the open-loop op driver, pacing, the
durability ledger, the load generator's self-check.
"""
