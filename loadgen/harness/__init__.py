"""The Locust adapter: event hooks, command-line options, users, the web UI's Recovery tab, the
master/worker messages, the fault relay, the verdict as exit code.
"""
