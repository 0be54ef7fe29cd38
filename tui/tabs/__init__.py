"""The four tabs of a project: models, jobs, deployments, datasets."""
