import threading

from daebus.bus.turns import Turns


def test_one_thread_at_a_time_and_the_waiting_count_says_who_can_take_over():
    turns = Turns()
    turns.take()
    assert turns.waiting == 0
    took = threading.Event()

    def other():
        turns.take()
        took.set()
        turns.leave()

    thread = threading.Thread(target=other)
    thread.start()
    # The other thread waits for the turn: counted, not holding it.
    for _ in range(500):
        if turns.waiting == 1:
            break
        threading.Event().wait(0.01)
    assert turns.waiting == 1
    assert not took.is_set()
    turns.leave()
    assert took.wait(5)
    thread.join(5)
    assert turns.waiting == 0


def _waiter(turns, took):
    def run():
        if turns.take():
            took.set()
            turns.leave()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for _ in range(500):
        if turns.waiting:
            return thread
        threading.Event().wait(0.01)
    raise AssertionError("the other reader never waited")


def test_a_quick_lent_request_keeps_the_turn_and_a_long_one_is_read_past():
    turns = Turns(patience=0.05)
    assert turns.take()
    took = threading.Event()
    thread = _waiter(turns, took)
    assert turns.lend()                  # someone can read on should it run long
    assert turns.reclaim()               # it did not: still ours, nobody woke to take it
    assert not took.is_set()
    assert turns.lend()
    assert took.wait(5), "the waiting reader did not take over a long lent turn"
    assert not turns.reclaim()           # it took the turn meanwhile
    thread.join(5)


def test_nothing_is_lent_without_another_reader_and_close_ends_every_wait():
    turns = Turns()
    assert turns.take()
    assert not turns.lend()
    took = threading.Event()
    thread = _waiter(turns, took)
    turns.close()
    thread.join(5)
    assert not thread.is_alive() and not took.is_set()
    assert not turns.take()


def test_closing_gives_one_last_turn_when_the_holder_is_busy_with_a_lent_request():
    # What arrived just before a stop must still be read: the waiting
    # reader takes the lent turn at once instead of giving up.
    turns = Turns(patience=30)
    assert turns.take()
    took = threading.Event()
    thread = _waiter(turns, took)
    assert turns.lend()
    turns.close()
    assert took.wait(5)
    thread.join(5)
    assert not turns.reclaim()
