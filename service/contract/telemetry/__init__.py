"""What every process reports: JSON logs with context, traces (off unless ``OTEL_*`` asks),
and the Prometheus exposition."""
