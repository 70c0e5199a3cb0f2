"""SIGTERM, as schedulers and `kill` send it, acts as Ctrl+C and is remembered for the message and the exit code."""
import os
import signal
import time

import pytest

from jobs._train import signals as _signals


def test_sigterm_becomes_ctrl_c_and_the_run_knows_which_it_was():
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    # Python's own Ctrl+C: an earlier sweep in this process may have left Tune's SIGINT handler in place
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _signals.forward_sigterm()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # Python runs the handlers between bytecodes: here, at once
        assert _signals.stopped_by() == signal.SIGTERM
        assert _signals.exit_code(_signals.stopped_by()) == 143 and _signals.exit_code(signal.SIGINT) == 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _signals._received.clear()
