"""Locust's ``--web-login`` set up for a test, as Locust's docs describe: a second locustfile.

``locust -f loadgen/locustfile.py,tests/support/locust_web_login.py --web-login ...`` gives
the web UI a Flask-Login user loader (one user, ``tester``) and ``/test-login``, which logs
that user in: a test can then compare an anonymous request with a logged-in one. Loopback
test servers only (a fixed secret key).
"""

from __future__ import annotations

from typing import Any

from flask_login import UserMixin, login_user
from locust import events


class WebLoginUser(UserMixin):
    """The one user the test server knows."""

    id = "tester"


@events.init.add_listener
def _configure_login(environment: Any, web_ui: Any = None, **_kw: Any) -> None:
    if web_ui is None or not web_ui.web_login:
        return
    web_ui.app.config["SECRET_KEY"] = "pegbench-test-only"
    web_ui.login_manager.user_loader(lambda uid: WebLoginUser() if uid == "tester" else None)

    @web_ui.app.route("/test-login")
    def _test_login() -> str:
        login_user(WebLoginUser())
        return "logged in"
