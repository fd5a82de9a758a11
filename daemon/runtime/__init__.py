"""The composition root: ``app`` wires storage, channels, engine, service, servers and the bot;
``runner`` is ``fnotify run``; ``reload`` applies SIGHUP; ``systemd`` speaks sd_notify and socket
activation; ``logs`` sets up logging.

May import every layer below it (core, config, channels, storage, api, bot); nothing imports it
but the CLI.
"""
