"""A logging filter that keeps the secret of every emailed link (a URL rule's `token` part) out of the logs."""

from __future__ import annotations

import logging
import re

from flask import Flask

REDACTED = "***"
# The development server's access log, gunicorn's access and error logs; the app's own logger is added per app.
LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")
_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^:<>]+)>")
_SEGMENT = r"[^/\s?#\"'&]+"
_formatter = logging.Formatter()


def rule_pattern(rule: str) -> re.Pattern | None:
    """A regex finding this URL rule anywhere in a line, the part before its `token` variable in group "lead"."""
    parts, position = [], 0
    for match in _VARIABLE.finditer(rule):
        parts.append(re.escape(rule[position : match.start()]))
        position = match.end()
        if match.group(1) == "token":
            return re.compile(f"(?P<lead>{''.join(parts)}){_SEGMENT}")
        parts.append(_SEGMENT)
    return None


class LinkTokenFilter(logging.Filter):
    """Rewrites a record whose message holds a link token: `/reset-password/<token>` becomes `/reset-password/***`."""

    def __init__(self) -> None:
        super().__init__()
        self.patterns: dict[str, re.Pattern] = {}

    def add_rules(self, app: Flask) -> None:
        for rule in app.url_map.iter_rules():
            if "token" in rule.arguments and rule.rule not in self.patterns:
                pattern = rule_pattern(rule.rule)
                if pattern is not None:
                    self.patterns[rule.rule] = pattern

    def redact(self, text: str) -> str:
        for pattern in self.patterns.values():
            text = pattern.sub(lambda match: match.group("lead") + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: logging reports it itself
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatted here, once, as a handler would: a traceback may quote the address too.
            record.exc_text = self.redact(_formatter.formatException(record.exc_info))
        return True


link_token_filter = LinkTokenFilter()


def install(app: Flask) -> None:
    """Redact the link tokens of `app`'s URL rules in the server logs and the app's logger (once per logger)."""
    link_token_filter.add_rules(app)
    for logger in (*(logging.getLogger(name) for name in LOGGERS), app.logger):
        if link_token_filter not in logger.filters:
            logger.addFilter(link_token_filter)
