"""bench/peers/celery_app.py: the Celery app of the peers benchmark (bench/peers/compare.py).

Broker from BENCH_BROKER (redis://127.0.0.1:PORT/0 or redis+socket:///path), no result backend, one noop task.
"""
import os

from celery import Celery

app = Celery('bpeers', broker=os.environ['BENCH_BROKER'])
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False, worker_send_task_events=False,
                task_send_sent_event=False, broker_connection_retry_on_startup=True, worker_prefetch_multiplier=4)


@app.task(name='bpeers.noop')
def noop(i=None):
    return None
