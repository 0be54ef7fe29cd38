"""The Datasets tab: what data a project knows, and registering more."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical

from core.service import Deck
from core.views import DatasetView
from tui.modals import DatasetForm
from tui.widgets import DeckTable, Polled, Row


class DatasetsPane(Polled[list[DatasetView]], Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_dataset", "Register", id="datasets.new"),
    ]
    poll_scale = 2.0

    def __init__(self, project: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.project = project

    def compose(self) -> ComposeResult:
        table = DeckTable(id="datasets-table", opens=False)
        # The path last: the longest, it is the one cut when the table is narrow, at its
        # start (…/data/train.csv): the file's name matters most.
        for name in ("name", "target", "rows", "columns", "format"):
            table.add_column(name, key=name)
        table.add_column("path", key="path", shrink=16, cut="start")
        yield table

    def on_mount(self) -> None:
        self.start_polling()

    def fetch(self, deck: Deck, state: None) -> list[DatasetView]:
        return deck.datasets(self.project)

    def show(self, datasets: list[DatasetView]) -> None:
        self.query_one(DeckTable).sync(
            [
                Row(
                    d.id,
                    [
                        d.name,
                        d.target or "-",
                        "?" if d.rows is None else f"{d.rows:,}",
                        "?" if d.columns is None else str(d.columns),
                        d.format,
                        d.path,
                    ],
                )
                for d in datasets
            ]
        )

    def action_new_dataset(self) -> None:
        deck = self.deck

        def submit(values: dict[str, Any]) -> DatasetView:
            return deck.add_dataset(
                self.project,
                values.get("name") or "",
                values.get("path") or "",
                (values.get("target") or "").strip() or None,
            )

        def added(d: DatasetView | None) -> None:
            if d is not None:
                self.notify(f"dataset {d.name} registered ({d.rows or 0:,} rows)")
                self.poll(force=True)

        self.app.push_screen(DatasetForm(submit), added)
