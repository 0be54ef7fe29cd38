"""A random forest grown a few trees at a time, with a log to watch while it grows."""

import time

import joblib
import pandas as pd
from sklearn.ensemble import RandomForestClassifier


def train(context):
    hp = context.hyperparameters
    frame = pd.read_csv(context.dataset.path)
    target = context.dataset.target
    x, y = frame.drop(columns=[target]), frame[target]
    rounds = int(hp.get("rounds", 20))
    trees_per_round = int(hp.get("trees_per_round", 5))
    pause = float(hp.get("seconds_per_round", 0.5))
    model = RandomForestClassifier(
        n_estimators=0, warm_start=True, max_depth=hp.get("max_depth"), random_state=0
    )
    print(f"growing {rounds * trees_per_round} trees on {len(frame)} rows")
    for r in range(1, rounds + 1):
        model.n_estimators += trees_per_round
        model.fit(x, y)
        accuracy = model.score(x, y)
        print(
            f"round {r:>3}/{rounds}: {model.n_estimators} trees, training accuracy {accuracy:.4f}"
        )
        context.progress(r / rounds, f"{model.n_estimators} trees")
        time.sleep(pause)
    joblib.dump(model, context.model_dir / "model.joblib")
    context.record_metrics({"train_accuracy": model.score(x, y), "trees": model.n_estimators})
