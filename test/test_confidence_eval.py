"""Sparsification curves / AUSE, and the confidence evaluation's command line on a few generated pairs."""

import numpy as np
import pytest

from flownet_ros.evaluation import confidence as conf_eval
from flownet_ros.evaluation.scoring import SPARSIFICATION_FRACTIONS, ause, sparsification_curve


def test_oracle_has_zero_ause_and_a_falling_curve_random_and_reversed_rankings_do_worse():
    rng = np.random.default_rng(0)
    err = rng.gamma(1.0, 2.0, 5000)
    oracle = sparsification_curve(err, -err)
    assert oracle[0] == pytest.approx(err.mean()) and np.all(np.diff(oracle) <= 1e-12)
    assert ause(err, -err) == 0.0
    noisy = ause(err, -err + rng.normal(0, 1.0, err.size))
    random = ause(err, rng.random(err.size))
    assert 0 < noisy < random < ause(err, err)
    assert len(oracle) == len(SPARSIFICATION_FRACTIONS)


def test_ties_do_not_rank_by_pixel_order():
    err = np.r_[np.zeros(500), np.ones(500)]  # sorted: pixel order alone would be the oracle
    assert ause(err, np.ones_like(err)) == pytest.approx(ause(err, np.random.default_rng(3).random(1000)), abs=0.05)
    with pytest.raises(ValueError, match="one non-zero size"):
        sparsification_curve(err, err[:-1])


def test_generated_part_runs_and_prints_every_table(capsys, tmp_path):
    out = tmp_path / "c.json"
    assert conf_eval.main(["--part", "generated", "--count", "2", "--photos", "skimage", "--size", "96", "128",
                           "--method", "dis", "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for heading in ("Occlusion", "AUSE", "Moving objects"):
        assert heading in text
    assert out.stat().st_size > 100
