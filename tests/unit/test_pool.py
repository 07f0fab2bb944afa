import threading

from daebus.pool import WorkerPool


def test_a_second_item_does_not_wait_behind_a_long_one_when_threads_are_idle():
    pool = WorkerPool(4, queue_size=4)
    warm = threading.Event()
    assert pool.submit(warm.set)
    assert warm.wait(5)
    assert pool.join(5)  # one idle thread now
    release, quick = threading.Event(), threading.Event()
    assert pool.submit(release.wait, 30)
    assert pool.submit(quick.set)
    assert quick.wait(5), "second item starved behind the first"
    release.set()
    assert pool.join(5)


def test_full_pool_refuses_work():
    pool = WorkerPool(1, queue_size=1)
    release = threading.Event()
    assert pool.submit(release.wait, 30)
    assert pool.submit(release.wait, 30)
    assert not pool.submit(release.wait, 30)
    release.set()
    assert pool.join(5)
    assert pool.submit(lambda: None)


def test_join_times_out_while_work_runs_and_close_refuses_new_work():
    pool = WorkerPool(1, queue_size=0)
    release = threading.Event()
    pool.submit(release.wait, 30)
    assert not pool.join(0.05)
    pool.stop()
    assert not pool.submit(lambda: None)
    release.set()
    assert pool.join(5)


def test_a_failing_call_keeps_the_worker_alive():
    pool = WorkerPool(1, queue_size=2)
    done = threading.Event()
    pool.submit(lambda: 1 / 0)
    pool.submit(done.set)
    assert done.wait(5)
