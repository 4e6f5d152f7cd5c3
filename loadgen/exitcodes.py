"""pegbench's process exit codes, declared once (DESIGN.md): every command returns one of these."""

EXIT_OK = 0
#: ``run``: the SLO verdict failed or is unknown; ``compare``: the candidate is worse.
EXIT_VERDICT = 1
#: bad usage, profile or input (a missing or malformed run folder)
EXIT_USAGE = 2
#: a runtime failure: the cluster, a node, a writer
EXIT_RUNTIME = 3
#: interrupted (Ctrl-C), after cleanup: 128 + SIGINT, as a shell reports it
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = ("exit codes: 0 ok, 1 verdict failed, 2 usage/profile/input error, "
                   "3 runtime failure, 130 interrupted (after cleanup)")
