"""``what_happened``: the few sentences a new user reads first, built from the summary's figures.

Every sentence must be true, and read well, for every outcome a run can have: the latency fell,
rose or stayed put after a scale-up; there was no scale-up, or no instance became ready, or the
client never reached it; the backlog left by the boot was drained (and when), was never there, or
was still draining when the load fell; there was or was not a scale-in; some or no requests
failed. ``tests/unit/test_report_story.py`` checks each case by its exact wording.

Latency verdicts compare p95 values with a 10 % dead band: closer than that is "about the same",
not a rise or a fall that noise could have made.
"""

from __future__ import annotations

from typing import Any

SAME_WITHIN = 0.10  # p95s within 10 % of each other are "about the same"
NO_BACKLOG_S = 0.5  # a drain shorter than this is no backlog worth a sentence


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _trend(before: float, after: float) -> str:
    if after > before * (1 + SAME_WITHIN):
        return "rose"
    if after < before * (1 - SAME_WITHIN):
        return "fell"
    return "same"


def overload_sentence(s: dict[str, Any]) -> str:
    over = s.get("overload_start")
    if over:
        return f"The load rose to its high phase {over['t_rel_s']:.1f} s into the run."
    return "The client log has no high-load phase."


def scale_up_sentences(s: dict[str, Any]) -> list[str]:
    up, ready, answer = s.get("scale_up"), s.get("new_instance_ready"), s.get("first_answer_from_new")
    if not up:
        high = s["latency"].get("high", {}).get("p95_s")
        over = s.get("overload_start")
        early = [
            d
            for d in s.get("decisions", [])
            if d.get("direction") == "up" and d.get("applied") and over and d["t_rel_s"] < over["t_rel_s"]
        ]
        if early:  # the summary looks for the scale-up that answers the high load, after it began
            e = early[-1]
            head = (
                f"The autoscaler scaled up from {e['from']} to {e['to']} at {e['t_rel_s']:.1f} s, before the "
                "high load began, and did not scale up during it"
            )
        else:
            head = "No scale-up happened"
        if over and high is not None:
            return [f"{head}; the p95 response time over the high load was {ms(high)}."]
        return [head + "."]
    parts = [
        f"The autoscaler decided to scale up from {up['from']} to {up['to']} at {up['t_rel_s']:.1f} s"
        f" ({up['policy']}: {up['reason']})."
    ]
    if not ready:
        parts.append("No new instance became ready after that decision.")
        return parts
    took = s.get("reaction_s", {}).get("decision_to_ready")
    after = f", {took:.1f} s after the decision" if took is not None else ""
    parts.append(f"The new instance {ready['instance']} was ready at {ready['t_rel_s']:.1f} s{after}.")
    if not answer:
        parts.append("The client never got an answer from the new instance.")
        return parts
    parts.append(f"The client got its first answer from it at {answer['t_rel_s']:.1f} s.")
    parts += latency_sentences(s, ready["instance"])
    return parts


def latency_sentences(s: dict[str, Any], new: str) -> list[str]:
    """The p95 before the scale-up against after it, and why, with the backlog's part in it."""
    lat, drain = s["latency"], s.get("backlog") or {}
    b, a = lat["before"]["p95_s"], lat["after"]["p95_s"]
    backlog = bool(drain) and (drain["never_drained"] or (drain["drain_s"] or 0) >= NO_BACKLOG_S)
    if b is None or a is None:
        return [
            "There were too few answered requests to compare response times before and after the scale-up."
        ]
    trend = _trend(b, a)
    if trend == "fell":
        parts = [f"The p95 response time fell from {ms(b)} before the scale-up to {ms(a)} after it."]
    elif trend == "same":
        parts = [
            f"The p95 response time stayed about the same: {ms(b)} before the scale-up, {ms(a)} after it."
        ]
    elif backlog:
        parts = [
            f"The p95 response time rose from {ms(b)} before the scale-up to {ms(a)} after it, because the "
            f"requests that queued while {new} was starting were answered only after it arrived."
        ]
    else:
        parts = [
            f"The p95 response time rose from {ms(b)} before the scale-up to {ms(a)} after it, although no "
            f"backlog was left when {new} started answering."
        ]
    if backlog:
        parts.append(drain_sentence(s, b))
    return parts


def drain_sentence(s: dict[str, Any], before: float) -> str:
    drain = s["backlog"]
    if drain["never_drained"]:
        return "The backlog had still not been worked off when the log ended."
    took = f"The backlog was worked off {drain['drain_s']:.1f} s after the new instance's first answer"
    if drain["after_high_load"]:
        return took + ", once the high load had ended."
    settled = s["latency"]["after_drain"]["p95_s"]
    if settled is None:
        return took + "."
    trend = _trend(before, settled)
    compare = {
        "fell": f"below the {ms(before)} before the scale-up",
        "same": f"about the {ms(before)} before the scale-up",
        "rose": f"still above the {ms(before)} before the scale-up",
    }[trend]
    return f"{took}; from then on the p95 was {ms(settled)}, {compare}."


def scale_in_sentence(s: dict[str, Any]) -> str:
    s_in = s.get("scale_in")
    if not s_in:
        return "No scale-in happened before the run ended." if s.get("scale_up") else "No scale-in happened."
    if s_in.get("how") == "decision":
        what = f"the autoscaler decided to scale in from {s_in.get('from')} to {s_in.get('to')}"
        if s_in.get("instance"):
            what += f" (draining {s_in['instance']})"
    else:
        what = f"{s_in.get('instance')} started draining"
    end = s.get("overload_end")
    if end and s_in["t_rel_s"] >= end["t_rel_s"]:
        return f"Once the load fell, {what} at {s_in['t_rel_s']:.1f} s."
    if end:
        return f"While the load was still high, {what} at {s_in['t_rel_s']:.1f} s."
    return f"At {s_in['t_rel_s']:.1f} s, {what}."


def requests_sentence(s: dict[str, Any]) -> str:
    total = s.get("requests", {}).get("total", 0)
    errs = s.get("errors", {})
    failed = errs.get("count", 0)
    if total == 0:
        return "The client sent no requests."
    if failed:
        kinds = ", ".join(f"{k} × {v}" for k, v in errs.get("by_kind", {}).items())
        if failed == total:
            return f"{'The only request' if total == 1 else f'All {total} requests'} failed ({kinds})."
        return f"{failed} of {total} requests failed ({kinds})."
    return "The only request succeeded." if total == 1 else f"All {total} requests succeeded."


def narrative(s: dict[str, Any]) -> str:
    """A few plain sentences saying what the logs show, including what did not happen."""
    parts = [overload_sentence(s), *scale_up_sentences(s), scale_in_sentence(s), requests_sentence(s)]
    return " ".join(parts)
