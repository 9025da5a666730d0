"""``tokenrelay jobs``: the operator's view of the queue, the jobs and the dead letters, and the
actions on them (cancel, requeue). It talks to Redis with the same settings as every process."""
