"""Locust entry point of pegbench: ``locust -f loadgen/locustfile.py``.

With a profile, Locust runs the benchmark as ``pegbench run`` does: the profile's onebox is
started (stopped at quit), each test — a press of the web UI's Start, or the one test of
``--headless`` — runs the profile's faults from its start and writes a run folder at its end,
and Locust exits with the verdict's code::

    locust -f loadgen/locustfile.py --pegbench-profile profiles/quick.toml            # web UI
    locust -f loadgen/locustfile.py --headless --pegbench-profile profiles/quick.toml

``--pegbench-out DIR`` names the first run's folder (default the profile's ``[report] out``);
``--meta HOST:PORT`` uses a running cluster instead (its faults observed, not injected), and
``--onebox-dir DIR`` a onebox of ``pegbench onebox start --dir DIR`` (faults through its
supervisor). ``-u``/``-r``/``-t`` default to the profile (``users`` per policy, all at once,
``duration_s``). ``--pegbench-profile`` is the TOML profile; Locust's own ``--profile`` stays
Locust's (a name grouping test runs). Distributed: the same with ``--master``
(``--expect-workers N``), plus N workers started as ``locust -f loadgen/locustfile.py --worker
--master-host HOST``; workers get pegbench's options from the master.

One User class per compared policy (``FailoverUser``, ``LegacyUser``, ...; equal weights),
each user an open-loop schedule of ``rate_per_user`` ops/s. Locust's request stats show
``<policy>:<op>`` with response times measured from each op's intended start. Exit code: 3 if
pegbench's own code failed; with a profile, the last run's verdict (0 pass, 1 fail or
unknown, 130 interrupted); without one (``--meta`` alone: load only), 0 unless Locust's
``--exit-code-on-error N`` was given explicitly (then N if any request failed).
The wiring lives in :mod:`loadgen.runner.locust_runs` and :mod:`loadgen.harness.hooks`; this
file only connects it.
"""

from locust import events

from loadgen.harness.users import user_class
from loadgen.pegasus import policies
from loadgen.runner.locust_runs import install

install(events)

# Locust discovers User classes in this module; the compared ones are picked at init.
globals().update({cls.__name__: cls for cls in (user_class(info.name)
                                                for info in policies.available())})
