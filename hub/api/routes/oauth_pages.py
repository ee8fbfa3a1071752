"""HTML of the development login (a stand-in for DigiD in the embedded mode; off in production).

Two small forms: pick who you are, then pick for whom you act ("myself" or a client who
delegated to you) and which of the app's scopes you approve. Every value is escaped; the
authorization request travels along in hidden fields and is validated again on each step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape

from hub.access.clients import Delegation, PersonRecord

#: Headers for every login page: never cached, never framed, no scripts.
PAGE_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}"
    "fieldset{margin:1rem 0}label{display:block;margin:.3rem 0}.err{color:#a00}"
    ".dev{background:#fec;padding:.5rem;border:1px solid #ca6}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='nl'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        "<p class='dev'>Development login: this stands in for DigiD and is switched off in production.</p>"
        f"{body}</body></html>"
    )


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in fields.items() if v)


def error_page(message: str) -> str:
    return _page("Authorization request refused", f"<p class='err'>{escape(message)}</p>")


def login_form(
    action: str,
    request_fields: Mapping[str, str],
    client_name: str,
    persons: Sequence[PersonRecord],
    error: str | None = None,
) -> str:
    """Step 1: who are you (a registered person, or just a BSN as DigiD would give it)."""
    options = "".join(
        f"<label><input type='radio' name='person_id' value='{escape(p.person_id)}'> "
        f"{escape(p.name or p.person_id)} <small>({escape(p.person_id)})</small></label>"
        for p in persons
    )
    err = f"<p class='err'>{escape(error)}</p>" if error else ""
    body = (
        f"<p><b>{escape(client_name)}</b> asks to sign you in.</p>{err}"
        f"<form method='post' action='{escape(action)}'>{_hidden(request_fields)}"
        "<input type='hidden' name='step' value='login'>"
        f"<fieldset><legend>Log in as</legend>{options or '<p>No persons registered.</p>'}"
        "<label>or with BSN <input name='login_bsn' inputmode='numeric' pattern='[0-9]{9}' size='10'></label>"
        "</fieldset><button type='submit'>Log in</button></form>"
    )
    return _page("Log in", body)


def consent_form(
    action: str,
    request_fields: Mapping[str, str],
    client_name: str,
    who: PersonRecord,
    delegations: Sequence[Delegation],
    scopes: Iterable[str],
    error: str | None = None,
) -> str:
    """Step 2: for whom do you act, and which scopes do you approve."""
    choices = []
    if who.bsn:
        choices.append(
            f"<label><input type='radio' name='act_for' value='self' checked> Myself "
            f"<small>(BSN {escape(who.bsn)})</small></label>"
        )
    for i, d in enumerate(delegations):
        checked = " checked" if not choices and i == 0 else ""
        cats = ", ".join(d.categories) or "no categories"
        choices.append(
            f"<label><input type='radio' name='act_for' value='{escape(d.bsn)}'{checked}> "
            f"Client with BSN {escape(d.bsn)} "
            f"<small>(role {escape(d.relation)}; {escape(cats)})</small></label>"
        )
    scope_boxes = "".join(
        f"<label><input type='checkbox' name='scope_ok' value='{escape(s)}' checked> <code>{escape(s)}</code></label>"
        for s in scopes
    )
    err = f"<p class='err'>{escape(error)}</p>" if error else ""
    no_one = "<p>There is no one you may act for.</p>"
    approve = "<button type='submit' name='decision' value='approve'>Approve</button> " if choices else ""
    body = (
        f"<p>Logged in as <b>{escape(who.name or who.person_id)}</b>.</p>{err}"
        f"<form method='post' action='{escape(action)}'>{_hidden(request_fields)}"
        "<input type='hidden' name='step' value='approve'>"
        f"{_hidden({'person_id': who.person_id})}"
        f"<fieldset><legend>Act for</legend>{''.join(choices) or no_one}</fieldset>"
        f"<fieldset><legend><b>{escape(client_name)}</b> may</legend>"
        f"{scope_boxes or '<p>(no scopes)</p>'}</fieldset>"
        f"{approve}<button type='submit' name='decision' value='deny'>Deny</button></form>"
    )
    return _page("Approve access", body)


__all__ = ["PAGE_HEADERS", "consent_form", "error_page", "login_form"]
