"""The Datasets tab: what data a project knows, and registering more."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical

from core.views import DatasetView
from tui.modals import DatasetForm
from tui.widgets import Background, DeckTable, Row


class DatasetsPane(Background, Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_dataset", "Register", id="datasets.new"),
    ]

    def __init__(self, project: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.project = project

    def compose(self) -> ComposeResult:
        table = DeckTable(id="datasets-table")
        # The path last: the longest, it is the one cut when the table is narrow.
        for name in ("name", "target", "rows", "columns", "format", "path"):
            table.add_column(name, key=name)
        yield table

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        deck = self.app.deck  # type: ignore[attr-defined]
        self.load("datasets.fetch", lambda: deck.datasets(self.project), self._show)

    def _show(self, datasets: list[DatasetView]) -> None:
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
        deck = self.app.deck  # type: ignore[attr-defined]

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
                self.reload()

        self.app.push_screen(DatasetForm(submit), added)
