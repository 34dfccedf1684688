"""Faithfulness of the explanations of the bundled model on the sample world (issue 5's "must show"):

- integrated gradients: completeness gap ≤ 5% of f(x) − f(baseline);
- Shapley values sum to f(x) − f(baseline) within 1e-4, from the same baseline;
- deleting the three most-attributed history events lowers the item's score more than deleting three
  random ones, on average over ≥ 100 shopper-item pairs (each shopper's top item in one of four scenarios);
- model randomisation (Adebayo et al., 2018): with re-initialised weights the attributions change —
  mean Spearman rank correlation with the trained model's ≤ 0.3;
- for breakfast/coffee pushed at 08:00 (a planted hour effect), the hour carries the largest context attribution;
- attention rows of real histories sum to 1 with no weight on future or padding events.

`SCENEPUSH_MODEL_DIR` may name another model folder to check.
"""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from recsys_core import recommend
from recsys_core.context import Scenario
from recsys_core.explain.attention import attention_maps
from recsys_core.explain.attributions import integrated_gradients
from recsys_core.explain.cases import for_item, shopper_case
from recsys_core.explain.counterfactuals import remove_columns, score_histories
from recsys_core.explain.shapley import is_history_group, shapley_values

torch.set_num_threads(1)
N_PAIRS = 110
N_RANDOMISED = 30
SCENARIOS = (
    Scenario(dt.datetime(2025, 12, 15, 8, 0), {"device": "mobile", "channel": "push", "location": "commute"}),
    Scenario(dt.datetime(2025, 12, 15, 14, 0), {"device": "pc", "channel": "search", "location": "office"}),
    Scenario(dt.datetime(2025, 12, 16, 20, 30), {"device": "mobile", "channel": "live_stream", "location": "home"}),
    Scenario(dt.datetime(2025, 12, 20, 15, 0), {"device": "mobile", "channel": "home_feed", "location": "city"}),
)


@pytest.fixture(scope="module")
def con(sample_world_con):
    return sample_world_con


@pytest.fixture(scope="module")
def lm(bundled_model):
    return bundled_model


@pytest.fixture(scope="module")
def pairs(lm, con):
    """N_PAIRS (case, attributions, Shapley values): every 25th shopper with ≥ 20 events, their top item."""
    users = [r[0] for r in con.execute(
        "SELECT user_id FROM events GROUP BY user_id HAVING count(*) >= 20 ORDER BY user_id").fetchall()][::25][:N_PAIRS]
    assert len(users) == N_PAIRS
    out = []
    for i, user in enumerate(users):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        item = recommend.recommend(lm, con, user, scenario, k=1)["item_id"].iloc[0]
        case = for_item(shopper_case(lm, con, user, scenario), item)
        out.append((case, integrated_gradients(lm.model, case.batch, case.item, n_steps=50), shapley_values(lm.model, case.batch, case.item)))
    return out


def test_completeness_gap_within_5_percent(pairs):
    worst = max(a.relative_gap for _, a, _ in pairs)
    assert worst <= 0.05, f"largest completeness gap {worst:.2%} of f(x) − f(baseline)"
    assert all(abs(a.score - a.baseline_score) > 1e-3 for _, a, _ in pairs)


def test_explained_scores_are_the_served_scores(lm, con, pairs):
    for case, a, _ in pairs[:8]:
        top = recommend.recommend(lm, con, case.user_id, case.scenario, k=1)
        assert top["item_id"].iloc[0] == case.item_id
        assert a.item_score == pytest.approx(float(top["score"].iloc[0]), abs=1e-4)
        # the explained quantity: the item's log-probability under the softmax of the served scores
        scores = recommend.score_scenarios(lm, con, case.user_id, [case.scenario])[0].astype(np.float64)
        log_prob = scores[case.item - 1] - (scores.max() + np.log(np.exp(scores - scores.max()).sum()))
        assert a.score == pytest.approx(log_prob, abs=1e-4)


def test_shapley_values_sum_to_score_minus_baseline(pairs):
    for _, a, s in pairs:
        assert abs(sum(s.values.values()) - (s.score - s.base_value)) <= 1e-4
        assert s.base_value == pytest.approx(a.baseline_score, abs=1e-4) and s.score == pytest.approx(a.score, abs=1e-4)


def test_deleting_the_most_attributed_events_hurts_more_than_random_ones(lm, pairs):
    rng = np.random.default_rng(0)
    top_drops, random_drops = [], []
    for case, a, _ in pairs:
        n = len(case.events)
        assert n >= 6
        totals = a.event_totals[case.offset:]
        top3 = [case.offset + int(j) for j in np.argsort(-totals)[:3]]
        randoms = [[case.offset + int(j) for j in rng.choice(n, 3, replace=False)] for _ in range(5)]
        scores = score_histories(lm.model, remove_columns(case.batch, [top3, *randoms]))
        values = torch.log_softmax(scores, dim=1)[:, case.item].numpy()  # the explained quantity
        top_drops.append(a.score - values[0])
        random_drops.append(a.score - values[1:].mean())
    top_mean, random_mean = float(np.mean(top_drops)), float(np.mean(random_drops))
    print(f"\nlog-probability drop, 3 most-attributed events deleted: {top_mean:.3f}; 3 random events: {random_mean:.3f} "
          f"(mean over {len(pairs)} pairs; top > random in {np.mean(np.array(top_drops) > np.array(random_drops)):.0%})")
    assert len(pairs) >= 100
    assert top_mean > random_mean


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy with every weight re-drawn from the model's own initialisation (LayerNorms reset)."""
    r = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in r.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.reset_parameters()
    r.apply(r._init_weights)
    with torch.no_grad():
        r.item_bias.normal_(0.0, 0.02)
    return r.eval()


def test_randomising_the_weights_changes_the_attributions(lm, pairs):
    rand = randomised(lm.model, seed=1)
    rhos, rhos_abs = [], []
    for case, a, _ in pairs[:N_RANDOMISED]:
        b = integrated_gradients(rand, case.batch, case.item, n_steps=50)
        rhos.append(spearmanr(a.vector(), b.vector()).statistic)
        rhos_abs.append(spearmanr(np.abs(a.vector()), np.abs(b.vector())).statistic)
    print(f"\nSpearman ρ trained vs randomised attributions: mean {np.mean(rhos):.3f} (of |values|: {np.mean(rhos_abs):.3f}) "
          f"over {N_RANDOMISED} pairs")
    assert np.mean(rhos) <= 0.3
    assert np.mean(rhos_abs) <= 0.3


def test_morning_coffee_and_breakfast_are_explained_by_the_hour(lm, con):
    users = [r[0] for r in con.execute(
        """SELECT e.user_id FROM events e JOIN items i USING (item_id) GROUP BY e.user_id HAVING count(*) >= 60
           ORDER BY avg(CASE WHEN i.category IN ('Coffee', 'Breakfast') THEN 1 ELSE 0 END) DESC, e.user_id LIMIT 5""").fetchall()]
    scenario = Scenario(dt.datetime(2025, 12, 15, 8, 0), {"device": "mobile", "channel": "home_feed", "location": "home"})  # a Monday at home
    checked = 0
    for user in users:
        top = recommend.recommend(lm, con, user, scenario, k=10)
        morning = top[top["category"].isin(["Coffee", "Breakfast"])]
        assert not morning.empty, f"{user}: no coffee or breakfast in the top 10 at 08:00"
        case = for_item(shopper_case(lm, con, user, scenario), morning["item_id"].iloc[0])
        s = shapley_values(lm.model, case.batch, case.item)
        context = {g: v for g, v in s.values.items() if not is_history_group(g)}
        assert max(context, key=context.get) == "hour", (user, context)
        a = integrated_gradients(lm.model, case.batch, case.item)
        assert max(a.context, key=a.context.get) == "hour", (user, a.context)
        checked += 1
    assert checked == 5


def test_attention_of_real_histories(lm, con, pairs):
    from recsys_core.sequences import serving_batch

    case = pairs[0][0]
    short = {k: v[:, -4:] for k, v in case.batch.history.items()}  # four events, left-padded to the model's length
    padded = serving_batch({k: v[0].numpy() for k, v in short.items()}, [case.context], lm.model.history_len)
    for batch in (case.batch, padded):
        maps = attention_maps(lm.model, batch)
        w, valid = maps.weights, maps.valid
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-5)
        T = w.shape[-1]
        assert np.all(w[..., np.triu(np.ones((T, T), bool), k=1)] == 0)
        assert np.all(w[:, :, valid][:, :, :, ~valid] == 0)
        assert maps.rollout().sum() == pytest.approx(1.0) and np.all(maps.rollout()[~valid] == 0)
