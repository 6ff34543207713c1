"""The public pages customers see: the survey answer page, its thank-you and refusal
pages, and the unsubscribe confirmation. Plain HTML forms, no JavaScript, every value
escaped; wording comes from the survey's template when ops localised it.

A template localises the page by defining any of these blocks (the others stay
English): ``lang``, ``page_title``, ``question``, ``low_label``, ``high_label``,
``comment_label``, ``submit``, ``thanks``."""

from __future__ import annotations

import logging
from html import escape
from pathlib import Path

from jinja2 import TemplateError

from channels import registry as channels
from engine.template_context import survey_context
from messaging import render_blocks
from store.surveys import MAX_COMMENT, Survey

log = logging.getLogger(__name__)

DEFAULTS: dict[str, dict[str, str]] = {
    "nps": {
        "question": "How likely are you to recommend us to a friend or colleague?",
        "low_label": "Not at all likely",
        "high_label": "Extremely likely",
    },
    "csat": {
        "question": "How satisfied are you with your experience?",
        "low_label": "Very unsatisfied",
        "high_label": "Very satisfied",
    },
}
COMMON = {
    "lang": "en",
    "page_title": "A quick question",
    "comment_label": "Anything you would like to tell us? (optional)",
    "submit": "Send my answer",
    "thanks": "Thank you! Your answer was recorded.",
}
MAX_STRING = 500  # a localised label is a sentence, not a page

_STYLE = """
body{font:1.125rem/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;
color:#111;background:#fff}
fieldset{border:0;padding:0;margin:0 0 1.5rem}legend{font-weight:600;margin-bottom:.75rem}
.scale{display:flex;flex-wrap:wrap;gap:.5rem}
.scale label{display:flex;align-items:center;justify-content:center;gap:.25rem;
min-width:3rem;min-height:3rem;border:2px solid #555;border-radius:.5rem;cursor:pointer}
.scale input{width:1.25rem;height:1.25rem}
.scale label:focus-within{outline:3px solid #1a56db;outline-offset:2px}
textarea{width:100%;min-height:6rem;font:inherit;box-sizing:border-box}
button{font:inherit;min-height:3rem;padding:.5rem 1.5rem;margin-top:1rem;cursor:pointer}
.error{color:#a00;font-weight:600}
"""


def strings(templates_dir: Path, survey: Survey, *, url: str = "") -> dict[str, str]:
    """The page's wording: blocks of the survey's template where it defines them, else
    English. A block that fails to render falls back to English (and is logged)."""
    out = {**COMMON, **DEFAULTS[survey.kind]}
    # the names a survey message has, so `journeys validate` checks these blocks like the
    # rest of the template
    context = survey_context(url=url, kind=survey.kind, expires_at=survey.expires_at)
    try:
        found = render_blocks(Path(templates_dir), survey.template, list(out), context)
    except (TemplateError, OSError, UnicodeDecodeError) as exc:
        log.warning("survey page: template %s unusable: %s", survey.template, exc)
        return out
    out.update({name: text[:MAX_STRING] for name, text in found.items() if text})
    return out


def _page(lang: str, title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="{escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n<h1>{escape(title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )


def survey_form(survey: Survey, text: dict[str, str], *, error: str | None = None) -> str:
    """The answer form: one radio button per score, a comment box, a submit button."""
    low, high = survey.scale
    choices = "\n".join(
        f'<label for="score-{n}"><input type="radio" id="score-{n}" name="score" value="{n}"'
        f"{' required' if n == low else ''}>{n}</label>"
        for n in range(low, high + 1)
    )
    alert = f'<p class="error" role="alert">{escape(error)}</p>\n' if error else ""
    body = (
        f"{alert}"
        f'<form method="post" action="/v1/surveys/{escape(survey.token)}">\n'
        '<fieldset aria-describedby="scale-hint">\n'
        f"<legend>{escape(text['question'])}</legend>\n"
        f'<p id="scale-hint">{low} = {escape(text["low_label"])}, '
        f"{high} = {escape(text['high_label'])}</p>\n"
        f'<div class="scale">\n{choices}\n</div>\n</fieldset>\n'
        f'<label for="comment">{escape(text["comment_label"])}</label>\n'
        f'<textarea id="comment" name="comment" maxlength="{MAX_COMMENT}"></textarea>\n'
        f'<button type="submit">{escape(text["submit"])}</button>\n</form>'
    )
    return _page(text["lang"], text["page_title"], body)


def message_page(title: str, message: str, *, lang: str = "en") -> str:
    """A page that says one thing: thanks, or why the link cannot be used."""
    return _page(lang, title, f"<p>{escape(message)}</p>")


def _plural(channel: str) -> str:
    """What the page calls the messages of ``channel`` ("emails", "text messages")."""
    if channel == "all":
        return "all messages"
    try:
        return channels.get(channel).kind.plural
    except KeyError:
        return channel


def unsubscribe_form(token: str, channel: str) -> str:
    """Confirmation before opting out: a GET must not unsubscribe (mail scanners follow
    links), so the change takes a POST from this form or an RFC 8058 one-click client."""
    what = _plural(channel)
    body = (
        f"<p>Stop receiving marketing {escape(what)} from us?</p>\n"
        f'<form method="post" action="/u/{escape(token)}">\n'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
        f'<button type="submit">Unsubscribe from {escape(what)}</button>\n</form>'
    )
    return _page("en", "Unsubscribe", body)


def unsubscribed_page(channel: str) -> str:
    what = _plural(channel)
    return message_page(
        "You are unsubscribed",
        f"You will not receive marketing {what} from us any more. "
        "Messages you need about your orders still reach you.",
    )
