"""Fan-out inside one gateway process: one Redis reader per job, shared by all its viewers.

A :class:`JobFeed` holds a job's cursor (and, while it fits, its history) and hands each new
read to every subscribed :class:`Viewer` as a :class:`Batch`: the entries plus their frames,
encoded once. Batches are contiguous (each starts where the previous ended), which is what
lets a viewer join at any moment without a gap or a repeat (see ``viewer_stream.py``).

The reading itself is done per *lane* (``service/contract/keys.py``): a :class:`LaneReader` tails
all
live jobs of one lane with one blocking multi-key ``XREAD`` (legal on Redis Cluster because a
lane's keys share one hash slot). So a gateway holds at most one blocked connection per lane,
not per job, and Redis work per token does not grow with viewers. A lane reader is woken to
pick up a new job by an entry on its own control stream, which sits in the lane's slot too.

A token's path through this package: ``lane.py`` (one ``XREAD`` per lane) → ``feed.py`` (one per
job: its cursor, its history, new entries cut into a ``batch.py`` and encoded by ``frames.py``)
→ ``viewer.py`` (queued, or written at once by ``direct_write.py``) → ``viewer_stream.py`` (the
viewer's own handler: replay from its position, then live). ``hub.py`` keeps them all.
"""
