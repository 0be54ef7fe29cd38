"""Alerts: webhooks told when a job of a project fails, a schedule is missed, a batch run
drifts or a run's metric crosses a threshold.

``rules`` (what an alert listens for, its URL and how it is shown), ``tables`` (the rows),
``service`` (the verbs the CLI calls: ``deck.alerts``), ``scan`` (finding what happened
since the last look), ``delivery`` (the HTTP request and the record of each try). The engine
delivers (``core.engine.alerts``); the job never does.
"""
