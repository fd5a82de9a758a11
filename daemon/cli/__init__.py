"""``fnotify``, the command line: ``parser`` (every option and help text), ``commands`` (what each
command does), ``render`` (tables for people), ``doctor`` (``fnotify check``), ``main`` (dispatch).

The top layer: may import everything below it. Client commands use only ``daemon.client`` and
the config's socket path; ``run`` and ``tui`` import the runtime and the TUI when invoked.
"""
