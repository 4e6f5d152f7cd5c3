"""``pegbench run``: the run's lifecycle (cluster, baseline, Locust, faults, conclusion) and
its live view in the terminal.
"""
