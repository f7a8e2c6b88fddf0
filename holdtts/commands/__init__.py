"""One module per `holdtts` sub-command; each exposes a click command named `command`."""
