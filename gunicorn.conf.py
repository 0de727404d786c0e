"""gunicorn settings shared by `make run` (scripts/run-local) and the HTTP benchmarks.

gunicorn answers a request line over `limit_request_line` bytes itself, with an HTML page
(default 4094). We raise it to gunicorn's ceiling so that the app answers over-long URIs
with its own JSON 414 (`api.MAX_URI_BYTES`, 4096 bytes); only lines past 8190 bytes still
get gunicorn's page (a proxy in front should cap the request line below that).
"""

limit_request_line = 8190

# Keep-alive longer than any pause of a client between two requests on one connection.
# gunicorn's default (2 s) closes an idle connection just as a client that paused about 2 s
# sends its next request on it: the client reads ECONNRESET ("ConnectionResetError(104)",
# no worker timeout logged). Seen at concurrency 16 in the district scenario, where queueing
# stretches a resident's pauses towards 2 s; reproduced in isolation with 16 keep-alive
# clients pausing about 2 s against 2 workers × 4 threads: 3 resets in 1,282 requests at
# keepalive 2, none in 802 at 75 (README "Connection resets"). 75 s is nginx's default; an idle
# keep-alive connection costs a socket in the gthread worker's poller, not a thread.
keepalive = 75
