"""`modeldeck demo --no-tui`: seeds real history once (a deployment whose second batch
drifts), and is idempotent."""

from __future__ import annotations


def test_demo_seeds_once_with_real_history(cli) -> None:
    first = cli("demo", "--no-tui")
    assert first.code == 0, first.err
    assert "demo project ready" in first.out

    versions = cli("versions", "demo", "--json").json()
    assert [(v["model"], v["number"], v["status"]) for v in versions] == [
        ("iris-logreg", 1, "deployed")
    ]
    assert versions[0]["metrics"]["accuracy"] > 0.8
    datasets = {d["name"]: d for d in cli("datasets", "demo", "--json").json()}
    assert set(datasets) == {"iris-train", "iris-test", "iris-score", "iris-incoming"}
    assert datasets["iris-test"]["target"] == "target"
    assert datasets["iris-score"]["target"] is None
    models = {m["name"] for m in cli("models", "demo", "--json").json()}
    assert models == {"iris-logreg", "iris-forest"}

    again = cli("demo", "--no-tui")
    assert again.code == 0, again.err
    jobs = cli("jobs", "demo", "--json").json()
    assert [(j["type"], j["status"]) for j in jobs] == [
        ("batch_predict", "completed"),
        ("batch_predict", "completed"),
        ("deploy", "completed"),
        ("approve", "completed"),
        ("evaluate", "completed"),
        ("train", "completed"),
    ]
    (deployment,) = cli("deployments", "demo", "--json").json()
    assert deployment["dataset"] == "iris-incoming"
    runs = cli("drift", deployment["id"], "--history", "--json").json()
    # The first batch is the flowers as they are; the second's petals grew.
    assert [r["status"] for r in runs] == ["alert", "ok"]
    assert [(f["name"], f["status"]) for f in runs[0]["top"]] == [("petal_length", "alert")]
