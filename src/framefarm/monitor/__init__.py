"""``framefarm monitor``: a small web app (Starlette under uvicorn) that shows jobs as they render.

Everything comes through the job store and storage (``JobRepository``, ``attempt_history``,
``storage.logs``); actions go through the same ``JobManager`` calls as the CLI. Pages are rendered
on the server: HTML with inline CSS and SVG charts, and a few lines of vanilla JS that follow a job
over server-sent events. Nothing is fetched from another origin, so ``framefarm report`` writes the
same page, without the live parts, as one file that opens with no network.

    timeline.py   attempts → rows and bars (aggregated into buckets for big jobs)
    charts.py     the timeline and cost charts as SVG
    pages.py      the HTML pages
    live.py       what a live update sends (server-sent events)
    access.py     loopback by default; a token for any other address
    app.py        the routes
    report.py     one self-contained HTML file for a finished job

The CLI is its only importer (``framefarm.cli.monitor``).
"""
