"""The login form (``/console/login``: the token in, the session cookie out) and the logout;
the session and its checks themselves are ``hub.operator``'s."""

from __future__ import annotations

from aiohttp import web

from hub import operator
from hub.console.render import render

HOME = "/console/"
WRONG_ADDRESS = "The token in that address is not the console token of this hub."


def next_page(given: str | None) -> str:
    """Where to go once logged in: a console path, never another site (``//evil``, ``https:``)."""
    if not given or not given.startswith("/console/") or given.startswith(operator.LOGIN):
        return HOME
    if "\\" in given or any(ord(c) < 0x20 for c in given):
        return HOME
    return given


async def login_form(request: web.Request) -> web.StreamResponse:
    target = next_page(request.query.get("next"))
    if operator.is_operator(request):
        return operator.redirect(target)
    failed = request.query.get("failed") == "1"
    return _form(request, target, WRONG_ADDRESS if failed else "")


async def log_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    target = next_page(_text(form.get("next")))
    if not operator.same_origin(request):
        return _form(request, target, "This form was sent from another site.", status=403)
    if not operator.is_token(request, _text(form.get("token")).strip()):
        return _form(request, target, "That is not the console token of this hub.", status=401)
    response = operator.redirect(target)
    operator.log_in(request, response)
    return response


async def log_out(request: web.Request) -> web.StreamResponse:
    """POST with the CSRF token (``hub.operator.guard`` checks it): the cookie is cleared."""
    response = operator.redirect(operator.LOGIN)
    operator.log_out(request, response)
    return response


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _form(request: web.Request, target: str, error: str, status: int = 200) -> web.Response:
    return render(request, "login.html", status=status, title="Log in", next=target, error=error)


def register(app: web.Application) -> None:
    app.router.add_get(operator.LOGIN, login_form, name="login")
    app.router.add_post(operator.LOGIN, log_in)
    app.router.add_post("/console/logout", log_out, name="logout")
