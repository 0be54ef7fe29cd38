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


def test_the_shipped_demo_data_is_iris_split_as_documented(tmp_path) -> None:
    """The demo copies CSV files instead of importing scikit-learn: they are its bundled
    iris, split stratified with ``random_state=7`` (train 60%, test and score 20% each, the
    score split without its target; incoming: all 150 flowers)."""
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    from core.demo import write_datasets

    iris = load_iris(as_frame=True).frame.rename(
        columns=lambda c: c.replace(" (cm)", "").replace(" ", "_")
    )
    train, rest = train_test_split(iris, test_size=0.4, random_state=7, stratify=iris["target"])
    test, score = train_test_split(rest, test_size=0.5, random_state=7, stratify=rest["target"])
    expected = {
        "train": train,
        "test": test,
        "score": score.drop(columns=["target"]),
        "incoming": iris,
    }
    paths = write_datasets(tmp_path)
    assert set(paths) == set(expected)
    for name, frame in expected.items():
        shipped = pd.read_csv(paths[name])
        pd.testing.assert_frame_equal(shipped, frame.reset_index(drop=True), check_dtype=False)
