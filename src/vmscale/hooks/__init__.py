"""Hooks into the group's life: lifecycle hooks that gate launch and terminate (``lifecycle``),
and webhooks that hear of every scale decision (``decisions``). Both run off the controller's
thread and report each call as a typed event.

    hooks = LifecycleHooks(cfg.hooks, publish=bus_publisher(events))
    webhooks = DecisionWebhooks(cfg.notify.webhooks, publish=bus_publisher(events))
"""

from __future__ import annotations

from vmscale.hooks.decisions import DecisionWebhooks, WebhookDelivery
from vmscale.hooks.http import Outcome
from vmscale.hooks.lifecycle import HookCalled, HookSubject, LifecycleHooks, PhaseResult

__all__ = [
    "DecisionWebhooks",
    "HookCalled",
    "HookSubject",
    "LifecycleHooks",
    "Outcome",
    "PhaseResult",
    "WebhookDelivery",
]
