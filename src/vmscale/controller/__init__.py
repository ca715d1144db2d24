"""The controller: a level-triggered reconcile loop over one group (see core.py for the map)."""

from vmscale.controller.core import Controller
from vmscale.controller.executor import InlineExecutor

__all__ = ["Controller", "InlineExecutor"]
