"""The exceptions of the manager contract (SPEC §3.7)."""


class BackendError(RuntimeError):
    """An update failed inside a backend's worker; raised from the next synchronize().

    The worker keeps running and the manager stays usable.
    """


class ManagerClosedError(RuntimeError):
    """The manager was closed; every call but close() raises this."""


class BackendUnavailableError(RuntimeError):
    """A backend cannot run here; the message says why (and what to install)."""
