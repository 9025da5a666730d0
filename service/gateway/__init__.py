"""The aiohttp gateway: accepts jobs, reports them, and serves each job's events to any number
of viewers with exact resume. ``api/`` is the native HTTP API and the page, ``openai/`` the
OpenAI-compatible front door, ``fanout/`` one Redis reader per job shared by its viewers."""
