"""Optional observers of the daemon: Prometheus metrics, settle notifications, retention."""
