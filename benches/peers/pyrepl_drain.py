"""Parse-drain peer: python-mysql-replication (PyPI `mysql-replication`) reads the
server's binlog from the first file to the end (non-blocking) and iterates every row
of every row event, nothing downstream. Prints the row count as JSON.

Usage: pyrepl_drain.py HOST PORT USER PASSWORD SERVER_ID FIRST_BINLOG
"""
import json
import sys

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

host, port, user, password, server_id, first = sys.argv[1:7]
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
for event in stream:
    for _row in event.rows:
        rows += 1
stream.close()
print(json.dumps({"rows": rows}))
