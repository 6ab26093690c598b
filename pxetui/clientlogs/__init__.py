"""Installer logs and kernel consoles from booting clients (docs/CLIENT-LOGS.md).

syslog.py and netconsole.py decode one datagram each (pure, total); decode.py is what a service
or a pcap reader calls; stages.py maps installer lines to install stages; store.py keeps the
newest lines per client; service.py is the `logs` service process.
"""
