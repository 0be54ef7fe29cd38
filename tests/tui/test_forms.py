"""The forms (issue 8 item 6): what they offer and start on, how the keys move and submit,
the focused field without colour, and the time zone of a deploy."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList, Select
from tui_support import extend_scripted, run_all, screen_text, wait_for

from core.service import Deck
from tui.app import ModelDeckApp
from tui.modals import DatasetPick, DeployForm, TrainForm
from tui.screens.job import JobScreen
from tui.screens.project import ProjectScreen
from tui.tabs.models import ModelsPane
from tui.widgets import DeckTable

SIZE = (100, 34)


def make_app(deck: Deck) -> ModelDeckApp:
    """No engine: what a form submits stays queued, for the test to read."""
    return ModelDeckApp(deck, project="proj", run_engine=False, poll=0.25)


def wide_csv(path: Path) -> Path:
    """The columns of the others and one more: it fits no version trained on them."""
    path.write_text("x1,x2,x3,label\n" + "".join(f"{i},{i},{i},{i % 2}\n" for i in range(20)))
    return path


@pytest.fixture
def version(deck: Deck, project: str, repo: Path) -> str:
    """An approved version of the scripted model (trained on ``train``, evaluated on
    ``test``), and a ``wide`` dataset with a target that does not fit it."""
    extend_scripted(repo)
    deck.add_dataset(project, "wide", wide_csv(repo / "data" / "wide.csv"), target="label")
    job = deck.train(project, "scripted", "train", {})
    run_all(deck)
    v = deck.job(job.id).version
    deck.evaluate(v, "test")
    run_all(deck)
    deck.approve(v, "fine")
    run_all(deck)
    return v


async def open_models(app: ModelDeckApp, pilot, row: str | None = None) -> ModelsPane:  # type: ignore[no-untyped-def]
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
    pane = app.screen.query_one(ModelsPane)
    table = pane.query_one(DeckTable)
    await wait_for(pilot, lambda: table.row_count > 0 and (row is None or row in table.rows))
    if row is not None:
        table.move_cursor(row=table.get_row_index(row))
    return pane


async def test_train_form_offers_datasets_with_a_target_and_the_models_last(
    deck: Deck, project: str
) -> None:
    # The scripted model was last trained on "test"; clf never was.
    deck.train(project, "scripted", "train", {})
    deck.train(project, "scripted", "test", {})
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_models(app, pilot, "model:scripted")
        assert pane.current_model == "scripted"
        await pilot.press("t")
        form = app.screen
        assert isinstance(form, TrainForm)
        dataset = form.query_one("#dataset", Select)
        await wait_for(pilot, lambda: dataset.value == "test")
        # "score" has no target column: a training could not learn from it.
        assert [value for _, value in dataset._options if isinstance(value, str)] == [
            "test",
            "train",
        ]
        form.query_one("#model", Select).value = "clf"
        await wait_for(pilot, lambda: dataset.value == "train")  # clf: by its name
        assert form.query_one("#hyperparameters", Input).value == "C=1.0"
        form.query_one("#model", Select).value = "scripted"
        await wait_for(pilot, lambda: dataset.value == "test")


async def test_focus_starts_on_the_first_field_and_only_ctrl_s_submits(
    deck: Deck, project: str
) -> None:
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await open_models(app, pilot, "model:scripted")
        await pilot.press("t")
        form = app.screen
        dataset = form.query_one("#dataset", Select)
        await wait_for(pilot, lambda: dataset.value == "train")
        assert form.focused is form.query_one("#model", Select)
        assert "ctrl+s: submit" in screen_text(app)  # the form's footer says the key
        await pilot.press("tab", "tab")
        assert form.focused is form.query_one("#hyperparameters", Input)
        await pilot.press("enter")  # the next field, not a training
        assert form.focused is form.query_one("#ok", Button)
        await pilot.pause(0.2)
        assert app.screen is form
        assert deck.jobs() == []
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        [job] = deck.jobs()
        assert (job.type, job.model, job.dataset) == ("train", "scripted", "train")


async def test_the_focused_field_is_marked_without_colour(
    deck: Deck, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(deck)
    assert app.no_color
    async with app.run_test(size=SIZE) as pilot:
        await open_models(app, pilot, "model:scripted")
        await pilot.press("t")
        form = app.screen
        await wait_for(pilot, lambda: form.query_one("#dataset", Select).value == "train")

        def marked() -> list[list[str]]:
            lines = screen_text(app).splitlines()
            return [line.strip("█▌▐ ").split()[:2] for line in lines if "> " in line]

        await wait_for(pilot, lambda: marked() == [[">", "scripted"]])
        await pilot.press("tab")
        await wait_for(pilot, lambda: marked() == [[">", "train"]])
        await pilot.press("tab")
        form.query_one("#hyperparameters", Input).value = "sleep=1"
        await wait_for(pilot, lambda: marked() == [[">", "sleep=1"]])
        assert form.focused is form.query_one("#hyperparameters", Input)


async def test_evaluate_and_stats_offer_the_datasets_that_fit(deck: Deck, version: str) -> None:
    deck.evaluate(version, "train")  # the model's last evaluation was on "train"
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await open_models(app, pilot, version)
        await pilot.press("e")
        form = app.screen
        assert isinstance(form, DatasetPick)
        await wait_for(pilot, lambda: form.datasets != [])
        # "score" has no target, "wide" an extra column: neither is offered.
        assert form.datasets == ["test", "train"]
        assert form.values() == {"dataset": "train"}
        picker = form.query_one("#dataset", OptionList)
        assert form.focused is picker
        await pilot.press("enter")  # picks it and moves on; only ctrl+s submits
        assert form.focused is form.query_one("#ok", Button)
        await pilot.pause(0.2)
        assert len(deck.jobs(job_type="evaluate")) == 2
        await pilot.press("enter")  # on the OK button: that submits
        await wait_for(pilot, lambda: len(deck.jobs(job_type="evaluate")) == 3)
        assert deck.jobs(job_type="evaluate")[0].dataset == "train"
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))
        await pilot.press("c")
        form = app.screen
        assert isinstance(form, DatasetPick)
        await wait_for(pilot, lambda: form.datasets != [])
        assert form.datasets == ["score", "test", "train"]  # a target is not needed
        assert form.values() == {"dataset": "train"}


def test_fitting_datasets_and_last_choice(deck: Deck, version: str) -> None:
    assert deck.training_datasets("proj") == ["test", "train", "wide"]
    assert deck.fitting_datasets(version, "evaluate") == ["test", "train"]
    assert deck.fitting_datasets(version, "compute_stats") == ["score", "test", "train"]
    assert deck.fitting_datasets(version, "deploy") == ["score", "test", "train"]
    assert deck.last_choice("proj", "scripted", "evaluate").dataset == "test"
    assert deck.last_choice("proj", "scripted", "deploy").dataset is None
    assert deck.last_choice("proj", "clf", "train").dataset is None
    deck.deploy(version, "train", "0 6 * * *", "Asia/Tokyo")
    deck.deploy(version, "score")  # no schedule: no zone chosen
    last = deck.last_choice("proj", "scripted", "deploy")
    assert (last.dataset, last.timezone) == ("score", "Asia/Tokyo")


async def test_deploy_form_remembers_the_zone_and_refuses_a_bad_one(
    deck: Deck, version: str
) -> None:
    deck.deploy(version, "train", "0 6 * * *", "Europe/Berlin")
    run_all(deck)
    app = make_app(deck)
    async with app.run_test(size=SIZE) as pilot:
        await open_models(app, pilot, version)
        await wait_for(pilot, lambda: app.screen.query_one(ModelsPane).current.status == "deployed")
        await pilot.press("d")
        form = app.screen
        assert isinstance(form, DeployForm)
        zone = form.query_one("#timezone", Input)
        dataset = form.query_one("#dataset", Select)
        await wait_for(pilot, lambda: zone.value == "Europe/Berlin")
        assert dataset.value == "train"  # the last deploy's, not "score" by its name
        assert form.focused is dataset
        form.query_one("#schedule", Input).value = "0 6 * * *"
        preview = form.query_one("#preview")
        await wait_for(pilot, lambda: "next runs (Europe/Berlin)" in str(preview.render()))
        # Tab into the zone keeps its text: a space typed there wipes nothing.
        await pilot.press("tab", "tab")
        assert form.focused is zone
        await pilot.press("space")
        assert zone.value == "Europe/Berlin "
        await pilot.pause(0.1)
        assert "next runs (Europe/Berlin)" in str(preview.render())
        # An empty or unknown zone is said so and refused, not replaced by UTC.
        for bad, said in (("", "no time zone"), ("Europe/Berln", "unknown time zone")):
            zone.value = bad
            await wait_for(pilot, lambda said=said: said in str(preview.render()))
            assert "invalid" in preview.classes
            await pilot.press("ctrl+s")
            await pilot.pause(0.2)
            assert app.screen is form
            assert said in str(form.query_one("#form-error").render())
        assert len(deck.jobs(job_type="deploy")) == 1
        # The refusal was of what the form held then: an edit takes it away (it stayed,
        # "no time zone" under a preview of a zone's runs).
        error = form.query_one("#form-error")
        assert error.display
        zone.value = "Asia/Tokyo"
        await wait_for(pilot, lambda: "next runs (Asia/Tokyo)" in str(preview.render()))
        assert not error.display and str(error.render()) == ""
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(deck.jobs(job_type="deploy")) == 2)
        job = deck.jobs(job_type="deploy")[0]
        assert job.params["timezone"] == "Asia/Tokyo"
        assert job.params["schedule"] == "0 6 * * *"


def test_hyperparameters_typed_in_the_form_are_split_as_a_shell_splits_words() -> None:
    from core.errors import ModelDeckError
    from tui.modals import pairs, parse_pairs

    # A value with a space is one pair (it was split at the space and refused).
    assert parse_pairs('note="a b" C=0.1') == {"note": "a b", "C": 0.1}
    # What the form shows as defaults reads back to the same values.
    defaults = {"layers": [1, 2], "name": "x y", "s": "1", "C": 0.5, "on": True}
    assert parse_pairs(pairs(defaults)) == defaults
    with pytest.raises(ModelDeckError, match="hyperparameters: No closing quotation"):
        parse_pairs('note="a b')
    # Said in the form's words (there is no --set in it); a key given twice is refused.
    with pytest.raises(ModelDeckError, match=r"^hyperparameter wants key=value, got 'foo'$"):
        parse_pairs("foo")
    with pytest.raises(ModelDeckError, match=r"^hyperparameter C is given twice: give each"):
        parse_pairs("C=0.5 C=0.7")
