"""`modeldeck demo --no-tui`: seeds real history once, and is idempotent."""

from __future__ import annotations


def test_demo_seeds_once_with_real_history(cli) -> None:
    first = cli("demo", "--no-tui")
    assert first.code == 0, first.err
    assert "demo project ready" in first.out

    versions = cli("versions", "demo", "--json").json()
    assert [(v["model"], v["number"], v["status"]) for v in versions] == [
        ("iris-logreg", 1, "evaluated")
    ]
    assert versions[0]["metrics"]["accuracy"] > 0.8
    datasets = {d["name"]: d for d in cli("datasets", "demo", "--json").json()}
    assert set(datasets) == {"iris-train", "iris-test", "iris-score"}
    assert datasets["iris-test"]["target"] == "target"
    assert datasets["iris-score"]["target"] is None
    models = {m["name"] for m in cli("models", "demo", "--json").json()}
    assert models == {"iris-logreg", "iris-forest"}

    again = cli("demo", "--no-tui")
    assert again.code == 0, again.err
    jobs = cli("jobs", "demo", "--json").json()
    assert [(j["type"], j["status"]) for j in jobs] == [
        ("evaluate", "completed"),
        ("train", "completed"),
    ]
