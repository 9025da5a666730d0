"""Redis, as every process uses it: the client, the Lua scripts (one loader), and the job
operations built on them (submit, cancel, requeue, read, queue status, viewer tokens)."""
