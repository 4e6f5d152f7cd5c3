"""Where ``pegbench run --web`` serves Locust's web UI, and the UI made there.

The runs themselves, one per press of Start, are :class:`~.locust_runs.LocustRuns`'s.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WebAddress:
    """Where ``pegbench run --web`` serves Locust's web UI."""

    host: str = "127.0.0.1"
    port: int = 8089

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


def web_ui(env: Any, web: WebAddress, settings: Any) -> None:
    """Locust's web UI on ``web``, its start form prefilled from the profile."""
    from locust.argument_parser import get_parser

    # Locust's web UI reads extra options from the process's command line (its
    # ui_extra_args_dict); pegbench's flags are not Locust's and would make it exit.
    sys.argv[1:] = []
    options = get_parser(default_config_files=()).parse_args(
        args=["--web-host", web.host, "--web-port", str(web.port)])
    options.num_users = settings.total_users
    options.spawn_rate = float(settings.total_users)
    env.parsed_options = options
    env.host = ",".join(settings.meta)
    env.create_web_ui(web.host, web.port)
