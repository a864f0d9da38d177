""""Did you mean …?": the closest name by edit distance (BuildKit's ``util/suggest.Search``)."""

from __future__ import annotations

from typing import Iterable


def levenshtein(a: str, b: str) -> int:
    """Edit distance with unit costs for insertion, deletion and substitution."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _match_case(option: str, original: str) -> str:
    """Give ``option`` the case pattern of ``original`` where their letters line up."""
    out = []
    for index, ch in enumerate(option):
        if index < len(original) and original[index].isupper():
            out.append(ch.upper())
        else:
            out.append(ch)
    return "".join(out)


def suggest(value: str, options: Iterable[str], *, case_sensitive: bool = True) -> str:
    """The option within distance 2 of ``value`` (the nearest, first on ties); "" for none or an exact match."""
    wanted = value if case_sensitive else value.lower()
    match = ""
    best = 3
    for option in options:
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return ""
        distance = levenshtein(wanted, candidate)
        if distance < best:
            match = candidate if case_sensitive else _match_case(candidate, value)
            best = distance
    return match
