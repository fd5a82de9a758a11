"""The Textual TUI of failover-notify: ``fnotify tui``.

It talks to the daemon only through its Unix socket (``daemon.protocol`` and ``daemon.client``);
it never opens the database (an import contract forbids every other daemon module).
``tui.model`` and ``tui.formatting`` are pure and tested without a terminal; ``tui.connection``
owns the socket; ``tui.screens`` and ``tui.widgets`` are the UI.
"""

from __future__ import annotations
