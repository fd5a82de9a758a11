"""failover-notify: a self-hosted notification daemon that fails over Telegram -> email -> SMS.

Packages, bottom to top (each may import only those below it; `make lint` checks this with the
import-linter contracts in pyproject.toml):

    protocol      the socket protocol: framing, vocabulary, typed events (imports nothing of ours)
    core          models, the failover decision, breaker, rate limits, events, the engine, and the
                  ports it needs (``core.store.Store``, ``core.channel.ChannelAdapter``); no I/O library
    credentials   systemd credentials
    config        the typed configuration
    channels      adapters for Telegram, SMTP and SMS (the only provider code)
    storage       the Store implementations (all SQL)
    api, client   the service layer and its socket and HTTP servers; the socket client
    (bot, tui)    the Telegram bot (through the service layer), the TUI (through the client)
    runtime       the composition root: wiring, `fnotify run`, reload, systemd, logging
    cli           the `fnotify` command

``daemon.simulators`` (loopback provider simulators and the demo) is tooling: nothing above imports it.
"""

__version__ = "0.1.0"
