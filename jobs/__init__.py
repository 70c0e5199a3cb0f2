"""The jobs users run, `python -m jobs.NAME`, and their parts."""
import time

# When Python first reached the jobs' code; see core.startup.process_start.
IMPORTED_AT = time.time()
