"""The places of the TUI: projects, a project's tabs, a job, an event, a version."""
