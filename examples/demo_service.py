"""A tiny stand-in for a Python service: a few request handlers, one stuck in
a slow "database" call, one crunching numbers, one waiting for work. Prints
its PID on the file descriptor VIGIL_READY_FD once every worker is busy."""
import os
import queue
import threading
import time

work = queue.Queue()
started = threading.Barrier(4)


class Database:
    def execute(self, query, params):
        time.sleep(3600)  # a query that never comes back


def crunch(numbers):
    total = 0
    while True:
        for n in numbers:
            total += n * n


def handle_request(path, user):
    db = Database()
    session_token = "s3cr3t"  # masked by --locals
    started.wait()
    return db.execute("SELECT * FROM sale_order WHERE user = %s", (user,))


def report_worker():
    started.wait()
    crunch(range(1000))


def idle_worker():
    started.wait()
    work.get()


threading.Thread(target=handle_request, args=("/sale/confirm", "admin"), name="http-1", daemon=True).start()
threading.Thread(target=report_worker, name="reports", daemon=True).start()
threading.Thread(target=idle_worker, name="http-2", daemon=True).start()
started.wait()
fd = int(os.environ.get("VIGIL_READY_FD", "-1"))
if fd >= 0:
    os.write(fd, b"%d\n" % os.getpid())
    os.close(fd)
threading.Event().wait()
