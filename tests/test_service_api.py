"""The service's shape: the facade satisfies the UI's `ChatService` protocol,
and importing or constructing it costs no nio."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tuichat.matrix.service import ChatService, MatrixService

if TYPE_CHECKING:

    def _typed(service: MatrixService) -> ChatService:
        return service  # the type checker's view of the same check


def _members(cls: type) -> dict[str, object]:
    return {name: value for name, value in vars(cls).items() if not name.startswith("_")}


def test_the_facade_has_every_call_of_the_protocol_with_its_signature() -> None:
    protocol = {n for n, v in _members(ChatService).items() if callable(v)}
    assert protocol, "the protocol lists calls"
    for name in sorted(protocol):
        implementation = getattr(MatrixService, name, None)
        assert implementation is not None, f"MatrixService lacks {name}"
        expected = inspect.signature(getattr(ChatService, name))
        actual = inspect.signature(implementation)
        assert list(actual.parameters) == list(expected.parameters), name
        for parameter, wanted in expected.parameters.items():
            got = actual.parameters[parameter]
            assert got.kind == wanted.kind, f"{name}({parameter})"
            assert got.default == wanted.default, f"{name}({parameter}) default"
        assert inspect.iscoroutinefunction(implementation) == inspect.iscoroutinefunction(
            getattr(ChatService, name)
        ), f"{name}: async or not, as the protocol says"
    attributes = {n for n, v in _members(ChatService).items() if isinstance(v, property)}
    assert attributes == {"user_id", "first_sync_done", "oauth_account"}
    for attribute in attributes:
        assert isinstance(getattr(MatrixService, attribute, None), property) or (
            f"self.{attribute} =" in inspect.getsource(MatrixService.__init__)
        ), f"MatrixService lacks the attribute {attribute}"


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_importing_the_service_imports_no_nio() -> None:
    out = _run(
        "import sys, tuichat.matrix.service\nprint('nio' in sys.modules, 'aiohttp' in sys.modules)"
    )
    assert out.split() == ["False", "False"]


def test_every_name_the_package_exports_resolves() -> None:
    import tuichat.matrix.service as service

    for name in service.__all__:
        assert getattr(service, name) is not None, name


def test_the_ui_catches_no_matrix_errors_the_calls_return_failed() -> None:
    """One error rule: the calls the UI makes return `Failed` for expected
    failures, so the UI imports no exception type from the service but
    ProfileError (a damaged profile, met at start-up)."""
    import ast

    import tuichat.matrix.service as service
    import tuichat.ui

    imported: set[str] = set()
    for source in Path(tuichat.ui.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "tuichat.matrix.service":
                imported.update(alias.name for alias in node.names)
    errors = {
        name
        for name in imported
        if isinstance(value := getattr(service, name), type) and issubclass(value, BaseException)
    }
    assert errors == {"ProfileError"}
    assert "Failed" in imported
    assert str(service.Failed("the server could not be reached")) == (
        "the server could not be reached"
    )


def test_constructing_the_service_imports_no_nio(tmp_path: Path) -> None:
    from tuichat.matrix.account.session import Profile, Session

    profile = Profile(tmp_path / "profile")
    profile.save_session(Session("https://matrix.example.org", "@me:example.org", "DEV", "t"))
    out = _run(
        "import sys, time\n"
        "from tuichat.matrix.service import MatrixService, Profile\n"
        "events = []\n"
        "started = time.perf_counter()\n"
        f"service = MatrixService(Profile({str(profile.root)!r}), events.append)\n"
        "took = time.perf_counter() - started\n"
        "print('nio' in sys.modules, service.user_id, took < 2.0)\n"
        "service.cache.close(); service.outbox.close()\n"
    )
    assert out.split() == ["False", "@me:example.org", "True"]
