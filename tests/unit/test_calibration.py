import numpy as np
import pytest

from sentinel.scoring.calibration import calibrate


def test_false_alarm_rate_target_is_met_on_fresh_normal_scores():
    rng = np.random.default_rng(0)
    fit, fresh = rng.gamma(3.0, 1.0, 5000), rng.gamma(3.0, 1.0, 200_000)
    hop = 0.5
    cal = calibrate(fit, hop, n_files=10, false_alarms_per_hour=36.0)  # p = 0.005 per window
    rate = (fresh > cal.threshold).mean() * 3600 / hop
    assert 18 < rate < 54, rate
    stricter = calibrate(fit, hop, n_files=10, false_alarms_per_hour=1.0)
    assert stricter.threshold > cal.threshold
    assert stricter.threshold >= fit.max() - 1e-9  # never below what normal audio reached


def test_quantile_threshold_and_stats():
    scores = np.linspace(-1, 1, 1001)
    cal = calibrate(scores, 0.5, n_files=3, quantile=0.9)
    assert cal.method == "quantile" and cal.threshold == pytest.approx(0.8)
    assert cal.n_windows == 1001 and cal.normal_quantiles["q500"] == pytest.approx(0.0)


def test_calibration_refuses_bad_requests():
    with pytest.raises(ValueError, match="exactly one"):
        calibrate(np.ones(10), 0.5, 1)
    with pytest.raises(ValueError, match="at least 2"):
        calibrate(np.ones(1), 0.5, 1, quantile=0.5)
