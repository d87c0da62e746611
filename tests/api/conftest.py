"""The queue fixtures (a share, the daemon in a thread or a process) for the API tests."""

from tests.jobqueue.conftest import daemon, env, small_csv, watch

__all__ = ["daemon", "env", "small_csv", "watch"]
