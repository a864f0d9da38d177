"""dive's CI gates (``dive --ci``): the rules of a ``.dive-ci`` file, their evaluation and
the report in dive's wording (``cmd/dive/cli/internal/command/ci`` of wagoodman/dive).

Rules: ``lowestEfficiency`` (a ratio 0-1; fails when the efficiency is below it),
``highestWastedBytes`` (bytes as go-humanize parses them, "20MB", "1 GiB"; fails above it)
and ``highestUserWastedPercent`` (a ratio 0-1 of wasted to user bytes; fails above it).
A value of "", "disabled", "off" or "false" disables a rule. Defaults as dive's: 0.9,
disabled, 0.1. The file may name them in camelCase (dive's legacy keys) or kebab-case.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import LLBookError
from solver.layers.efficiency import Efficiency

LOWEST_EFFICIENCY = "lowestEfficiency"
HIGHEST_WASTED_BYTES = "highestWastedBytes"
HIGHEST_USER_WASTED_PERCENT = "highestUserWastedPercent"
DEFAULTS = {LOWEST_EFFICIENCY: "0.9", HIGHEST_WASTED_BYTES: "disabled", HIGHEST_USER_WASTED_PERCENT: "0.1"}
_KEBAB = {"lowest-efficiency": LOWEST_EFFICIENCY, "highest-wasted-bytes": HIGHEST_WASTED_BYTES,
          "highest-user-wasted-percent": HIGHEST_USER_WASTED_PERCENT}
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
CONFIG_NAME = ".dive-ci"


class CIConfigError(LLBookError):
    """A ``.dive-ci`` file or rule value dive would refuse."""


def parse_rules_file(text: str, where: str = CONFIG_NAME) -> dict[str, str]:
    """The ``rules:`` mapping of a ``.dive-ci`` file (dive's YAML subset: ``key: value``
    lines, comments, quoted scalars), over dive's defaults."""
    rules = dict(DEFAULTS)
    in_rules = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        if not line[0].isspace():
            key, _, value = line.partition(":")
            in_rules = key.strip() == "rules"
            if in_rules and value.strip() not in ("", "{}"):
                raise CIConfigError(f"{where}:{number}: 'rules' must be a mapping")
            continue
        if not in_rules or line.strip().startswith("-"):
            continue
        key, sep, value = line.strip().partition(":")
        if not sep:
            raise CIConfigError(f"{where}:{number}: expected 'key: value', got {line.strip()!r}")
        key = _KEBAB.get(key.strip(), key.strip())
        if key in DEFAULTS:
            rules[key] = _unquote(value.strip())
    return rules


def _strip_comment(line: str) -> str:
    return re.sub(r"(^|\s)#.*$", "", line)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def load_rules(path: Path | str | None) -> dict[str, str]:
    """The rules of ``path`` when it exists (as dive: a missing file means the defaults)."""
    if path is None or not Path(path).exists():
        return dict(DEFAULTS)
    return parse_rules_file(Path(path).read_text(), str(path))


def is_disabled(value: str) -> bool:
    return value.strip().lower() in ("", "disabled", "off", "false")


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024, "m": 1000 ** 2, "mb": 1000 ** 2,
          "mi": 1024 ** 2, "mib": 1024 ** 2, "g": 1000 ** 3, "gb": 1000 ** 3, "gi": 1024 ** 3, "gib": 1024 ** 3,
          "t": 1000 ** 4, "tb": 1000 ** 4, "ti": 1024 ** 4, "tib": 1024 ** 4, "p": 1000 ** 5, "pb": 1000 ** 5,
          "pi": 1024 ** 5, "pib": 1024 ** 5}


def parse_bytes(text: str) -> int:
    """Bytes as go-humanize's ``ParseBytes`` reads them ("20Mb" = 20,000,000, "1 KiB" = 1024)."""
    match = re.fullmatch(r"\s*([0-9][0-9,]*(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", text)
    if match is None:
        raise ValueError(f"strconv.ParseFloat: parsing {text!r}: invalid syntax")
    unit = match.group(2).lower()
    if unit not in _UNITS:
        raise ValueError(f"unhandled size name: {unit}")
    return int(float(match.group(1).replace(",", "")) * _UNITS[unit])


def human_bytes(n: int) -> str:
    """go-humanize's ``Bytes``: "12 kB", "2.1 MB", "7 B"."""
    if n < 10:
        return f"{n} B"
    exp = min(int(math.floor(math.log(n) / math.log(1000))), 6)
    suffix = ("B", "kB", "MB", "GB", "TB", "PB", "EB")[exp]
    value = math.floor(n / 1000 ** exp * 10 + 0.5) / 10
    return f"{value:.0f} {suffix}" if value >= 10 else f"{value:.1f} {suffix}"


def go_value(x: float) -> str:
    """A float as Go's ``%v`` prints it (0.95, 0.5, 1)."""
    return str(int(x)) if x == int(x) and abs(x) < 1e21 else repr(x)


@dataclass
class RuleResult:
    rule: str
    status: str  # PASS | FAIL | SKIP
    message: str


@dataclass
class Evaluation:
    results: list[RuleResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.status != FAIL for r in self.results)

    def tally(self) -> dict[str, int]:
        return {k: sum(1 for r in self.results if r.status == s) for k, s in (("pass", PASS), ("fail", FAIL),
                                                                              ("skip", SKIP))}


def _ratio(key: str, value: str) -> float:
    try:
        threshold = float(value)
    except ValueError:
        raise CIConfigError(f"invalid {key} config value, given {value!r}") from None
    if not 0 <= threshold <= 1:
        raise CIConfigError(f"{key} config value is outside allowed range (0-1), given '{threshold:f}'")
    return threshold


def evaluate(rules: dict[str, str], eff: Efficiency) -> Evaluation:
    """Each rule's PASS/FAIL/SKIP and message, as dive words them (checked before any
    evaluation: a bad value raises ``CIConfigError``)."""
    values = {k: rules.get(k, DEFAULTS[k]) for k in DEFAULTS}
    checks = {}
    for key, value in values.items():
        if is_disabled(value):
            continue
        if key == HIGHEST_WASTED_BYTES:
            try:
                checks[key] = float(parse_bytes(value))
            except ValueError as err:
                raise CIConfigError(f"invalid highestWastedBytes config value, given {value!r}: {err}") from None
        else:
            checks[key] = _ratio(key, value)
    out = Evaluation()
    for key in sorted(values):
        if key not in checks:
            out.results.append(RuleResult(key, SKIP, "disabled"))
            continue
        failed = _failure(key, checks[key], eff)
        out.results.append(RuleResult(key, FAIL if failed else PASS, failed or values[key]))
    return out


def _failure(key: str, threshold: float, eff: Efficiency) -> str:
    if key == LOWEST_EFFICIENCY and threshold > eff.score:
        return f"image efficiency is too low (efficiency={eff.score:2.2f} < threshold={go_value(threshold)})"
    if key == HIGHEST_WASTED_BYTES and eff.wasted > threshold:
        return f"too many bytes wasted (wasted-bytes={eff.wasted} > threshold={int(threshold)})"
    if key == HIGHEST_USER_WASTED_PERCENT and eff.wasted_user_ratio > threshold:
        return ("too many bytes wasted, relative to the user bytes added "
                f"(%-user-wasted-bytes={eff.wasted_user_ratio:2.2f} > threshold={go_value(threshold)})")
    return ""


def _key_value(key: str, value: str) -> str:
    return f"  {(key + ':'):<18} {value}"


def report(eff: Efficiency, evaluation: Evaluation) -> str:
    """dive's CI report: Analysis, Inefficient Files, Evaluation and the PASS/FAIL line."""
    wasted = f"({human_bytes(eff.wasted)})" if eff.wasted > 0 else ""
    user = f"{eff.wasted_user_ratio * 100:.2f} %" if eff.wasted > 0 else "0 %"
    analysis = "\n".join(["Analysis:", _key_value("efficiency", f"{eff.score * 100:.2f} %"),
                          _key_value("wastedBytes", f"{eff.wasted} bytes {wasted}"),
                          _key_value("userWastedPercent", user)])
    if eff.inefficiencies:
        rows = [f"  {'Count':<5}  {'Wasted Space':<12}  File Path"]
        rows += [f"  {len(c.layers):<5}  {human_bytes(c.cumulative_size):<12}  {c.path}" for c in eff.inefficiencies]
        files = "Inefficient Files:\n" + "\n".join(rows)
    else:
        files = "Inefficient Files: (None)"
    lines = [f"  {r.status}  {r.rule} ({r.message})" if r.message else f"  {r.status}  {r.rule}"
             for r in evaluation.results]
    tally = " ".join(f"{k}:{v}" for k, v in evaluation.tally().items() if v > 0)
    status = ("FAIL" if not evaluation.passed else "PASS") + f" [{tally}]"
    return "\n\n".join([analysis, files, "Evaluation:\n" + "\n".join(lines) + "\n\n" + status])
