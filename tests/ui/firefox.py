"""Firefox for the cross-browser test: Debian's `firefox-esr` (installed with apt-get when
missing), driven through its built-in Marionette remote protocol (`marionette-driver` from
PyPI; no separate driver binary). Its microphone is whatever PulseAudio source is the default,
reached through `PULSE_SERVER`."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serve.local import free_port
from tests.system_packages import ensure_packages

FIREFOX = Path("/usr/bin/firefox-esr")
PREFS = {
    "media.navigator.permission.disabled": True,  # no permission prompt for the microphone
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.shell.checkDefaultBrowser": False,
    "app.update.disabledForTesting": True,
    "network.connectivity-service.enabled": False,
    "network.captive-portal-service.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.update.enabled": False,
}
STARTUP_TIMEOUT_S = 90


@contextmanager
def firefox(env: dict[str, str], log: Path) -> Iterator[Any]:
    """A headless Firefox session with `env` added to its environment; its output in `log`."""
    from marionette_driver.marionette import Marionette

    if not FIREFOX.exists():
        ensure_packages("firefox-esr")
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the browser process inherits the test process's environment
    try:
        client = Marionette(
            host="127.0.0.1",
            port=free_port(),
            bin=str(FIREFOX),
            headless=True,
            prefs=PREFS,
            startup_timeout=STARTUP_TIMEOUT_S,
            gecko_log=str(log),
        )
        client.start_session()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield client
    finally:
        client.cleanup()
        # Drop the profile objects now: their finalizers fail at interpreter exit.
        client.instance = None
        del client
        gc.collect()


def wait_until(check: Callable[[], Any], timeout: float, what: Callable[[], str]) -> Any:
    """Poll `check` until it returns something truthy; fail with `what()` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {what()}")
        time.sleep(0.2)
