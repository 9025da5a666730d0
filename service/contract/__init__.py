"""The contract every part of tokenrelay shares: settings, Redis keys, event names and stream
ids, the job record, errors, the SSE decoder; ``store/`` (every Redis operation and Lua script)
and ``telemetry/`` (logs, traces, metrics exposition). It imports no other part of tokenrelay."""
