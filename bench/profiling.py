"""Where a bench's time goes: a cProfile's own time summed per layer of the stack, and its heaviest functions."""

from __future__ import annotations

import pstats
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS = (  # (column, layer, what a profiled function's file or name contains), first match wins
    ("Jinja", "templates", ("jinja2", "/templates/", ".html")),
    ("Babel", "Babel's formatting", ("/babel/", "flask_babel")),
    ("ORM", "SQLAlchemy", ("/sqlalchemy/",)),
    ("driver", "psycopg, waiting on PostgreSQL included", ("psycopg",)),
    ("Flask", "Flask, Werkzeug, forms, login, sessions", ("/flask", "/werkzeug/", "/wtforms/", "itsdangerous")),
    ("Copydesk", "Copydesk's own code", (str(ROOT / "core"), str(ROOT / "modules"))),
)
OTHER = ("other", "Python's standard library and the rest")
COLUMNS = [column for column, _layer, _marks in LAYERS] + [OTHER[0]]


def layer_of(filename: str, name: str) -> str:
    for column, _layer, marks in LAYERS:
        if any(mark in filename or mark in name for mark in marks):
            return column
    return OTHER[0]


def layer_shares(stats: pstats.Stats) -> dict[str, float]:
    """Each layer's share of the profiled time (own time of its functions, so nothing is counted twice)."""
    shares = dict.fromkeys(COLUMNS, 0.0)
    for (filename, _line, name), (_calls, _primitive, own, _total, _callers) in stats.stats.items():
        shares[layer_of(filename, name)] += own
    spent = sum(shares.values()) or 1.0
    return {column: own / spent for column, own in shares.items()}


def legend() -> str:
    return "; ".join(f"{column}: {layer}" for column, layer, *_marks in (*LAYERS, OTHER))


def heaviest(stats: pstats.Stats, count: int = 12) -> list[str]:
    """Copydesk's functions with the most cumulative time, as `seconds  calls  file:line(function)` lines."""
    rows = []
    for (filename, line, name), (calls, _primitive, _own, total, _callers) in stats.stats.items():
        if filename.startswith(str(ROOT / "core")) or filename.startswith(str(ROOT / "modules")):
            rows.append((total, calls, f"{Path(filename).relative_to(ROOT)}:{line}({name})"))
    rows.sort(reverse=True)
    return [f"{total:8.2f} s {calls:9d}  {where}" for total, calls, where in rows[:count]]
