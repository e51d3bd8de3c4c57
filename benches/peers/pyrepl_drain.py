"""Parse-drain peer: python-mysql-replication (PyPI `mysql-replication`) reads the
server's binlog from the first file to the end (non-blocking) and iterates every row
of every row event, nothing downstream. Prints the row count as JSON.

It decodes a few thousand rows per second, so a run stops after MAX_SECONDS (default
60) and reports how many rows it iterated in how long: the rate is what is compared.

Usage: pyrepl_drain.py HOST PORT USER PASSWORD SERVER_ID FIRST_BINLOG [MAX_SECONDS]
"""
import json
import sys
import time

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

host, port, user, password, server_id, first = sys.argv[1:7]
max_seconds = float(sys.argv[7]) if len(sys.argv) > 7 else 60.0
started = time.monotonic()
stream = BinLogStreamReader(
    connection_settings={"host": host, "port": int(port), "user": user, "passwd": password},
    server_id=int(server_id),
    blocking=False,
    resume_stream=True,
    log_file=first,
    log_pos=4,
    is_mariadb=True,
    only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
)
rows = 0
complete = True
for event in stream:
    for _row in event.rows:
        rows += 1
    if time.monotonic() - started > max_seconds:
        complete = False
        break
seconds = time.monotonic() - started
stream.close()
print(json.dumps({"rows": rows, "seconds": seconds, "complete": complete}))
