"""OperationOutcomes (and transport failures) as plain Dutch sentences for people, not developers.

The hub explains its refusals in English for developers; a client or an administrator gets one
short Dutch sentence that says what happened and what to do, plus — where the hub named it — which
field was wrong. No stack traces, no codes.
"""

from __future__ import annotations

from typing import Any

_BY_STATUS: dict[int, str] = {
    400: "Wat u invulde kon niet worden verwerkt. Controleer de gegevens en probeer het opnieuw.",
    401: "U bent niet (meer) ingelogd. Log opnieuw in.",
    403: "U heeft geen toestemming om dit te doen.",
    404: "Deze gegevens zijn niet gevonden, of u mag ze niet zien.",
    405: "Dit kan hier niet.",
    409: "Iemand anders heeft dit net gewijzigd. Laad de pagina opnieuw en probeer het nog eens.",
    410: "Deze gegevens zijn verwijderd.",
    412: "Iemand anders heeft dit net gewijzigd. Laad de pagina opnieuw en probeer het nog eens.",
    413: "Wat u verstuurde is te groot.",
    422: "Wat u invulde voldoet niet aan de regels. Controleer de gegevens en probeer het opnieuw.",
    429: "Het is even te druk. Probeer het over een minuut opnieuw.",
}

_BY_CODE: dict[str, str] = {
    "required": "Er ontbreekt een verplicht gegeven.",
    "value": "Een gegeven heeft een waarde die niet klopt.",
    "invalid": "Een gegeven is niet goed ingevuld.",
    "structure": "Een gegeven is niet goed ingevuld.",
    "code-invalid": "Er is een keuze gemaakt die niet bestaat.",
    "business-rule": "Dit mag volgens de afspraken in het zorgnetwerk niet.",
    "conflict": "Iemand anders heeft dit net gewijzigd. Laad de pagina opnieuw en probeer het nog eens.",
    "duplicate": "Dit bestaat al.",
    "security": "U heeft geen toestemming om dit te doen.",
    "forbidden": "U heeft geen toestemming om dit te doen.",
    "login": "U bent niet (meer) ingelogd. Log opnieuw in.",
    "expired": "Uw sessie is verlopen. Log opnieuw in.",
    "not-found": "Deze gegevens zijn niet gevonden, of u mag ze niet zien.",
    "too-costly": "Deze vraag is te groot. Maak de zoekopdracht kleiner.",
    "throttled": "Het is even te druk. Probeer het over een minuut opnieuw.",
}

UNREACHABLE = "De zorgnet-hub is nu niet bereikbaar. Probeer het over een paar minuten opnieuw."
SERVER_ERROR = "Er ging iets mis bij de zorgnet-hub. Probeer het later opnieuw."


def plain_dutch(status: int, outcome: Any = None) -> str:
    """One Dutch sentence for a hub answer with ``status`` and (maybe) an OperationOutcome body."""
    if status >= 500:
        return SERVER_ERROR
    issue = _first_issue(outcome)
    sentence = _BY_STATUS.get(status, "Dit is niet gelukt.")
    if issue is not None and status in (400, 422):
        sentence = _BY_CODE.get(str(issue.get("code")), sentence)
        where = _where(issue)
        if where:
            sentence = f"{sentence.rstrip('.')} (bij: {where})."
    elif issue is not None and status not in _BY_STATUS:
        sentence = _BY_CODE.get(str(issue.get("code")), sentence)
    return sentence


def _first_issue(outcome: Any) -> dict[str, Any] | None:
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return None
    issues = [i for i in outcome.get("issue") or [] if isinstance(i, dict)]
    errors = [i for i in issues if i.get("severity") in ("error", "fatal")]
    chosen = errors or issues
    return chosen[0] if chosen else None


def _where(issue: dict[str, Any]) -> str:
    places = issue.get("expression") or issue.get("location") or []
    if isinstance(places, list) and places and isinstance(places[0], str):
        return places[0]
    return ""
