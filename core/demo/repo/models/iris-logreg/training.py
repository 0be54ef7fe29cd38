"""Logistic regression on the iris flowers: the demo's quick model."""

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score


def train(context):
    hp = context.hyperparameters
    frame = pd.read_csv(context.dataset.path)
    target = context.dataset.target
    x, y = frame.drop(columns=[target]), frame[target]
    print(f"training on {len(frame)} rows with {hp}")
    model = LogisticRegression(C=float(hp.get("C", 1.0)), max_iter=int(hp.get("max_iter", 200)))
    model.fit(x, y)
    context.progress(0.9, "fitted")
    train_accuracy = accuracy_score(y, model.predict(x))
    print(f"training accuracy {train_accuracy:.4f}")
    joblib.dump(model, context.model_dir / "model.joblib")
    context.record_metrics({"train_accuracy": train_accuracy})
