"""``pegbench run``: the run's lifecycle (cluster, baseline, Locust, faults, conclusion), the live view, the verdict."""
