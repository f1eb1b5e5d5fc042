"""Calls made at the same moment, each from its own thread and database connection."""

import threading

from django.db import connection, connections


def in_parallel(calls, *, start_together: bool = False, timeout: float = 20) -> list:
    """Run each zero-argument call in its own thread; return what each answered, or the
    exception it raised (a 500 surfaces as one in the test client). With ``start_together``
    every call waits for the others before it starts; tests that need a meeting point inside
    the code under test (a patched check) put their own barrier there."""
    barrier = threading.Barrier(len(calls), timeout=timeout) if start_together else None
    answers = [None] * len(calls)

    def run(position, call):
        try:
            if barrier is not None:
                barrier.wait()
            answers[position] = call()
        except Exception as error:  # noqa: BLE001 - recorded for the test to judge
            answers[position] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(position, call)) for position, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connections.close_all()
    return answers
