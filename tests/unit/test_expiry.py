"""Transit time of requests from the caller's send stamp (daebus.service.expiry)."""

from daebus.service.expiry import TransitClock


def test_without_a_stamp_nothing_is_known():
    assert TransitClock().transit(None) == 0.0
    assert TransitClock().transit(float("nan")) == 0.0


def test_a_constant_clock_difference_cancels_out():
    clock = TransitClock()
    # The caller's clock is 30 s behind; most requests arrive at once.
    assert clock.transit(1000.0, now=1030.0) == 0.0
    assert clock.transit(1001.0, now=1031.0) == 0.0
    # One that spent 4 s in transit shows 4 s, whatever the difference.
    assert abs(clock.transit(1002.0, now=1036.0) - 4.0) < 1e-9


def test_a_stepped_clock_is_forgotten_after_the_window():
    clock = TransitClock(window=60.0)
    assert clock.transit(100.0, now=100.0, tick=0.0) == 0.0
    # The service's clock was stepped 10 s forward: at first requests look 10 s old...
    assert clock.transit(110.0, now=120.0, tick=0.0) == 10.0
    clock.transit(150.0, now=160.0, tick=40.0)          # a new half-window
    # ...but within a window the old baseline is gone.
    assert clock.transit(190.0, now=200.0, tick=80.0) == 0.0
    assert abs(clock.transit(191.0, now=203.0, tick=80.0) - 2.0) < 1e-9
