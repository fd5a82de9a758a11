"""The core: what a notification is and what happens to it next.

Holds the domain models and vocabulary, the pure failover decision (``failover``), the circuit
breaker, the rate limiters, the in-process event bus, secret redaction, the delivery ``engine``,
and the ports the engine works through (``store.Store``, ``channel.ChannelAdapter``).

May import: ``daemon.protocol`` and the standard library (plus APScheduler for the engine's one
timer). Never an API, CLI, TUI, bot, storage or provider module, nor a provider library.
"""
