import threading

from daebus.turns import Turns


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
