"""Locust entry point of pegbench: ``locust -f loadgen/locustfile.py``.

Web UI::

    pegbench onebox start --dir /tmp/ob          # prints the meta address
    locust -f loadgen/locustfile.py --pegbench-profile profiles/quick.toml --meta 127.0.0.1:34601

Headless (``-u``/``-r``/``-t`` default to the profile: ``users`` per policy, ``duration_s``)::

    locust -f loadgen/locustfile.py --headless --pegbench-profile profiles/quick.toml --meta HOST:PORT

``--pegbench-profile`` is the TOML profile (what ``pegbench run PROFILE`` takes); Locust's own
``--profile`` stays Locust's (a name grouping test runs). Distributed: the same with
``--master`` (``--expect-workers N``), plus N workers started as
``locust -f loadgen/locustfile.py --worker --master-host HOST``; workers get pegbench's
options from the master.

One User class per compared policy (``FailoverUser``, ``LegacyUser``, ...; equal weights),
each user an open-loop schedule of ``rate_per_user`` ops/s. Locust's request stats show
``<policy>:<op>`` with response times measured from each op's intended start. Exit code: 3 if
pegbench's own code failed; else, since failed requests are what a fault run measures, 0
unless Locust's ``--exit-code-on-error N`` was given explicitly (then N if any request
failed). ``pegbench run`` sets the SLO verdict's code instead.
The wiring lives in :mod:`loadgen.harness.hooks`; this file only connects it.
"""

from locust import events

from loadgen.harness.users import user_class
from loadgen.pegasus import policies
from loadgen.runner.locust_runs import install

install(events)

# Locust discovers User classes in this module; the compared ones are picked at init.
globals().update({cls.__name__: cls for cls in (user_class(info.name)
                                                for info in policies.available())})
