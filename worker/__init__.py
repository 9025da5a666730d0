"""The worker: takes jobs from the queue, streams each from the upstream, and appends what
arrives to the job's event stream with fenced writes."""
