"""The pluggy markers of ds01's hooks: ``hookspec`` for the core, ``hookimpl`` for plugins.

In a module of its own so that every group of specifications imports it without importing the
package (whose ``__init__`` imports the groups).
"""

from __future__ import annotations

import pluggy

PROJECT = "ds01"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
