"""The probe schedule (runtime/probes.py): the kubelet's period, and quick first readiness retries."""

import pytest

from runtime.probes import next_probe_delay


@pytest.mark.parametrize(
    ("kind", "period", "ever_ready", "fails", "want"),
    [
        ("readiness", 1.0, False, 1, 0.05),
        ("readiness", 1.0, False, 3, 0.2),
        ("readiness", 1.0, False, 10, 1.0),  # never past the period
        ("readiness", 10.0, False, 6, 1.6),
        ("readiness", 1.0, True, 1, 1.0),  # once it has been ready: the period, as the kubelet
        ("readiness", 1.0, False, 0, 1.0),  # after a success
        ("liveness", 1.0, False, 1, 1.0),  # liveness failures count toward a restart
        ("startup", 5.0, False, 1, 5.0),  # so do startup failures
    ],
)
def test_next_probe_delay(kind: str, period: float, ever_ready: bool, fails: int, want: float) -> None:
    assert next_probe_delay(kind, period, ever_ready, fails) == pytest.approx(want)
