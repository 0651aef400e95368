"""The read-only status page the daemon serves when the config has a `web` section."""
