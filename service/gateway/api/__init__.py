"""The native HTTP API (``/v1/jobs``, events, health, metrics) and the page, with the JSON
errors and the access log they share."""
