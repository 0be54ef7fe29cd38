"""The job screen of a batch prediction previews the head of predictions.csv and the summary
of the predictions, every cell shown literally."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console
from textual.widgets import Static
from tui_support import run_all, screen_text, wait_for

from core.service import Deck
from tui.app import ModelDeckApp
from tui.screens.job import JobScreen

SIZE = (140, 45)


def shown(widget: Static) -> str:
    console = Console(width=SIZE[0], record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def test_the_job_screen_previews_predictions_and_their_summary(
    deck: Deck, project: str, repo: Path
) -> None:
    lines = ["id,x1,x2"] + [
        f"[b]A-{i}[/b],{(i % 2) * 2.0:.1f},{-(i % 2) * 1.5:.1f}" for i in range(12)
    ]
    (repo / "data" / "ids.csv").write_text("\n".join(lines) + "\n")
    deck.add_dataset(project, "ids", repo / "data" / "ids.csv")
    train = deck.train(project, "clf", "train")
    run_all(deck)
    version = deck.job(train.id).version
    deck.evaluate(version, "test")
    run_all(deck)
    deck.approve(version, "fine")
    run_all(deck)
    deploy = deck.deploy(version, "ids")
    run_all(deck)
    predict = deck.predict(deck.job(deploy.id).deployment)
    run_all(deck)
    assert deck.job(predict.id).status == "completed"

    app = ModelDeckApp(deck, project="proj", poll=0.25)
    async with app.run_test(size=SIZE) as pilot:
        app.open_job(predict.id)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, JobScreen) and app.screen.predictions is not None,
        )
        await pilot.pause(0.1)
        text = shown(app.screen.query_one("#job-predictions", Static))
        assert "12 predictions: 0: 6 (50%), 1: 6 (50%)" in text
        assert "its first 10 rows" in text
        assert "[b]A-0[/b]" in text and "[b]A-9[/b]" in text  # literal, not markup
        assert "A-10" not in text
        # The columns' names above their first row, whole.
        rows = text.splitlines()
        assert rows[1].split() == ["id", "prediction", "proba_0", "proba_1"]
        assert rows[2].split()[0] == "[b]A-0[/b]"
        # Probabilities are rounded to 3 decimals on screen; the file keeps every digit.
        written = (Path(deck.job(predict.id).outputs[0])).read_text().splitlines()
        exact = written[1].split(",")
        assert any(len(cell.split(".")[-1]) > 3 for cell in exact[2:])
        assert rows[2].split()[2:] == [f"{float(cell):.3f}" for cell in exact[2:]]
        # At 80x24 the preview leaves the log and the events room: the rows past it are cut.
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert app.screen.query_one("#log-pane").size.height >= 4
        assert app.screen.query_one("#events").size.height >= 3
        # ... and shows the rows there is room for (4 under this two-line outputs row, not
        # the 2 of a fixed 30%), saying how many.
        screen = screen_text(app)
        said = re.search(
            r"12 predictions: 0: 6 \(50%\), 1: 6 \(50%\)  ·  its first (\d+) rows", screen
        )
        assert said is not None and int(said.group(1)) >= 4
        last = int(said.group(1)) - 1
        assert f"[b]A-{last}[/b]" in screen and f"A-{last + 1}" not in screen
        header = shown(app.screen.query_one("#job-header", Static))
        assert "predictions.csv (in " in header
