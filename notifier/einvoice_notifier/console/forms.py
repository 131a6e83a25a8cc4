"""The form handling the console's duty and register pages share (the report pages use its guard):
who may see or post (a login to read; the operator role and the session's CSRF token to change
anything), the posted fields read once by name, a page that shows its form again with every error
and what was typed, and the redirect after a POST that succeeded."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import Response

from .views import SHANGHAI

EXPIRED = "请求已过期或来源不明，请刷新页面后重试"
READ_ONLY = "只读账号不能执行此操作"


@dataclass(frozen=True, slots=True)
class Posted:
    """A posted form: the session's CSRF token apart from the fields the page shows again."""

    csrf: str
    values: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.values[name]


def posted(*names: str) -> Any:
    """A dependency giving the form's `csrf` and these fields as text ("" when missing), as
    `Annotated[str, Form()] = ""` parameters would (the last value of a repeated name)."""

    async def read(request: Request) -> Posted:
        form = await request.form()

        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        return Posted(text("csrf"), {name: text(name) for name in names})

    return Depends(read)


def local_moment(text: str) -> datetime | None:
    """A datetime-local form value (Beijing wall clock) as an aware datetime; None when empty/bad."""
    try:
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return found.replace(tzinfo=SHANGHAI) if found.tzinfo is None else found


def failures(*checks: tuple[bool, str]) -> list[str]:
    """The messages of the checks that failed (bad, message), in order."""
    return [text for bad, text in checks if bad]


def reasons(exc: Exception) -> list[str]:
    """The messages of a service's error (InvalidInputError joins them with "；")."""
    return str(exc).split("；")


class FormError(Exception):
    """The form goes back to its page with these errors and what was typed (HTTP 422)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("；".join(errors))
        self.errors = errors


@contextmanager
def storing(split: bool = True) -> Iterator[None]:
    """Around a change of the store: its ValueError rejects the form with the error's messages (one
    by one when split, else the whole text)."""
    try:
        yield
    except ValueError as exc:
        raise FormError(reasons(exc) if split else [str(exc)]) from exc


@dataclass(frozen=True, slots=True)
class FormPage:
    """A page with a form: its template, with what it lists read afresh on every rendering."""

    page: Callable[..., Response]
    template: str
    context: Mapping[str, Callable[[], Any]] = field(default_factory=dict)

    def __call__(
        self,
        who: Any,
        status: int = 200,
        values: dict[str, str] | None = None,
        errors: list[str] | None = None,
        notice: str = "",
    ) -> Response:
        return self.page(
            self.template,
            status,
            who=who,
            **{name: read() for name, read in self.context.items()},
            values=values or {},
            errors=errors or [],
            notice=notice,
        )


@dataclass(frozen=True, slots=True)
class Forms:
    """The console's hooks (routes.build_router) the pages with forms use."""

    viewer_of: Callable[[Request], Any]
    page: Callable[..., Response]
    to_login: Callable[[Request], Response]
    redirect: Callable[[str], Response]
    csrf_ok: Callable[[Any, str], bool]

    def guard(self, request: Request, csrf: str | None = None) -> tuple[Any, Response | None]:
        """The viewer, or the answer when not logged in / not allowed (csrf given: a change)."""
        who = self.viewer_of(request)
        if who is None:
            return None, self.to_login(request)
        if csrf is not None and not self.csrf_ok(who, csrf):
            return who, self.page("error.html", 403, who=who, message=EXPIRED)
        if csrf is not None and not who.operator:
            return who, self.page("error.html", 403, who=who, message=READ_ONLY)
        return who, None

    def form_page(self, template: str, **context: Callable[[], Any]) -> FormPage:
        return FormPage(self.page, template, context)

    def show(self, request: Request, render: FormPage, notice: str = "") -> Response:
        """GET: the page for a logged-in viewer, with the notice of what was just done."""
        who, refused = self.guard(request)
        return refused or render(who, notice=notice)

    def submit(
        self,
        request: Request,
        form: Posted,
        render: FormPage,
        act: Callable[[Any, dict[str, str]], str],
    ) -> Response:
        """POST of a page's form: act(who, fields) checks the fields and changes the store (raising
        FormError, see storing) and answers where to go next; a rejected form is shown again with
        its errors and what was typed."""
        who, refused = self.guard(request, form.csrf)
        if refused:
            return refused
        try:
            target = act(who, form.values)
        except FormError as exc:
            return render(who, 422, form.values, exc.errors)
        return self.redirect(target)

    def missing(self, who: Any, what: str, raw: str) -> Response:
        """The 404 page of a record whose id in the URL is not one."""
        return self.page("error.html", 404, who=who, message=f"{what} {raw[:32]} 不存在")
