import threading

from daebus.service.pool import WorkerPool


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


def test_a_borrowed_worker_counts_against_max_workers_and_its_return_runs_what_waits():
    pool = WorkerPool(1, queue_size=1)
    assert pool.borrow()            # the caller's thread runs one call itself
    assert not pool.borrow()        # no second place
    ran = threading.Event()
    assert pool.submit(ran.set)     # waits: the only place is taken
    assert not ran.wait(0.2)
    assert not pool.submit(ran.set)  # and the queue is full
    pool.give_back()
    assert ran.wait(5), "the waiting call did not run once the place was given back"
    assert pool.join(5)


def test_join_waits_for_a_borrowed_worker_and_a_closed_pool_lends_none():
    pool = WorkerPool(2, queue_size=0)
    assert pool.borrow()
    assert not pool.join(0.05)
    pool.stop()
    assert not pool.borrow()
    pool.give_back()
    assert pool.join(5)


def test_a_thread_finishing_does_not_take_queued_work_beyond_max_workers():
    pool = WorkerPool(1, queue_size=2)
    release, first_done, second = threading.Event(), threading.Event(), threading.Event()

    def first():
        release.wait(30)
        first_done.set()

    assert pool.submit(first)
    assert pool.submit(second.set)          # queued behind it
    assert not pool.borrow()
    release.set()
    assert first_done.wait(5)
    assert second.wait(5)
    assert pool.join(5)
    assert pool.borrow()                    # the place is free again
    assert not pool.borrow()
    pool.give_back()
