"""The one small rule engine (STYLE rule 8): a decision is an ordered list of small rules over a
proposal, and it keeps every reason.

An area (rollout, monitoring) defines its own context, a dataclass that extends ``Decision`` with
what its rules look at, and its own rules, subclasses of ``Rule`` that say which proposals they
``govern`` and decide ``before`` the change happens: accept, wait, reject or abort, always with a
reason, or ``note`` a reason without changing the verdict. ``decide`` runs the rules in order and
stops once the verdict is one of the policy's ``stop_on`` statuses (rollout lets a rejection run on,
so that its failure budget can look at it; the monitor stops at the first no). A rule that raises
aborts the decision with its error as the reason: a broken rule never breaks its caller. Every rule
that fired is named in ``fired`` and each reason kept in ``reasons``, so the caller stores them with
the decision and its audit event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

ACCEPT, WAIT, REJECT, ABORT = "ACCEPT", "WAIT", "REJECT", "ABORT"
STOP_AT_NO = frozenset({WAIT, REJECT, ABORT})
STOP_AT_WAIT = frozenset({WAIT, ABORT})


@dataclass(kw_only=True)
class Decision:
    """The verdict on a proposal so far: its status, the rules that fired and their reasons."""

    status: str = ACCEPT
    reasons: list[str] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)

    def _record(self, status: str | None, rule: str, reason: str) -> None:
        if status is not None:
            self.status = status
        self.fired.append(rule)
        self.reasons.append(reason)

    def accept(self, rule: str, reason: str) -> None:
        self._record(ACCEPT, rule, reason)

    def wait(self, rule: str, reason: str) -> None:
        self._record(WAIT, rule, reason)

    def reject(self, rule: str, reason: str) -> None:
        self._record(REJECT, rule, reason)

    def abort(self, rule: str, reason: str) -> None:
        self._record(ABORT, rule, reason)

    def note(self, rule: str, reason: str) -> None:
        """A rule that fired without changing the verdict (e.g. it counted a failure)."""
        self._record(None, rule, reason)

    @property
    def reason(self) -> str:
        """Every reason, in the order the rules gave them."""
        return "; ".join(self.reasons)


D = TypeVar("D", bound=Decision)


class Rule:
    """One rule: ``governs`` picks the proposals it looks at, ``before`` decides on them."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def governs(self, ctx: Decision) -> bool:
        return True

    def before(self, ctx: Decision) -> None:
        """Accept, wait, reject, abort or note on ``ctx``; doing nothing lets the proposal through."""
        return None


def decide(ctx: D, rules: Sequence[type[Rule]], *, stop_on: frozenset[str] = STOP_AT_NO) -> D:
    """Run ``rules`` in order over ``ctx`` until its status is one of ``stop_on``; returns ``ctx``."""
    for rule_cls in rules:
        if ctx.status in stop_on:
            break
        rule = rule_cls()
        try:
            if rule.governs(ctx):
                rule.before(ctx)
        except Exception as exc:  # a broken rule aborts the decision, never its caller
            ctx.abort(rule.name, f"rule {rule.name} failed: {type(exc).__name__}: {exc}")
    return ctx
