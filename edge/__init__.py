"""towerwatch daemon: supervisor, alarm lifecycle, uplink, config and CLI."""

__version__ = "0.1.0"
