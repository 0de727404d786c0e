"""Move this interpreter's wall clock for a shifted test run (issue 17, `scripts/test-clock`).

Python imports `sitecustomize` at start-up from any directory on PYTHONPATH, so putting this
directory there moves the clock of the test process AND of every Python process the tests start
(the CLI, gunicorn, the sandbox, the worker) by the same offset: they agree with each other.
time-machine moves only the wall clock (time.time, datetime.now, date.today, localtime); the
monotonic clock, sleeps and lock time-outs stay real, which libfaketime could not guarantee
(its monotonic handling either hangs timed waits or makes time.sleep fail with EINVAL).
The database and broker servers keep the real clock: the product never asks them for the time.
"""

from __future__ import annotations

import os
import time

_offset = os.environ.get("SSI_CLOCK_OFFSET_SECONDS")
if _offset:
    import time_machine

    time_machine.travel(time.time() + float(_offset), tick=True).start()
