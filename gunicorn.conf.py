"""gunicorn settings shared by `make run` (scripts/run-local) and the HTTP benchmarks.

gunicorn answers a request line over `limit_request_line` bytes itself, with an HTML page
(default 4094). We raise it to gunicorn's ceiling so that the app answers over-long URIs
with its own JSON 414 (`api.MAX_URI_BYTES`, 4096 bytes); only lines past 8190 bytes still
get gunicorn's page (a proxy in front should cap the request line below that).
"""

limit_request_line = 8190
