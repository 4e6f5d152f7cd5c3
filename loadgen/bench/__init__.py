"""The ``pegbench bench`` benchmarks: client, cpu, onebox, recorder, locust users, policies,
frontier.
"""
