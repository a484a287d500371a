"""apps.stop_signal: the first SIGINT/SIGTERM asks to stop, a second interrupts; the previous
handlers come back."""

import signal

import pytest
from gristmill.apps.stop_signal import StopSignal


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_requests_a_stop_second_interrupts(sig):
    woken = []
    before = signal.getsignal(sig)
    with StopSignal(on_stop=lambda: woken.append(True)) as stop:
        assert not stop.requested and stop.name is None
        signal.raise_signal(sig)  # to this thread: handled before the next line
        assert stop.requested and stop.name == signal.Signals(sig).name and woken == [True]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(sig)  # to this thread: handled before the next line
    assert signal.getsignal(sig) is before
