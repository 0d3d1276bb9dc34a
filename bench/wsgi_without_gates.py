"""The project's WSGI application with the token endpoint's issuance gates switched off: the
"without" peer of `python -m bench dispatch` (bench/dispatch.py), served beside the normal
`iam_project.wsgi`. Only this benchmark names it; nothing in production imports it.

`iam_project.wsgi` sets Django up, so trust.apps has registered its gate by the time the registry is
emptied here; nothing registers it again in this process."""

from iam_project.wsgi import application


def _gates_off() -> None:
    from agents.issuance import ISSUANCE_GATES  # only once Django is set up

    ISSUANCE_GATES.clear()


_gates_off()
__all__ = ["application"]
