"""The jobs users run, `python -m jobs.NAME`, and their parts."""
import time

# When Python first reached the jobs' code; see core.profiling.startup.process_start.
IMPORTED_AT = time.time()
