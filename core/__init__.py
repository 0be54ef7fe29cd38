"""modeldeck's engine room: the model lifecycle as jobs, with no knowledge of any screen.

Keep this file empty of imports: the job runner is started by path and must stay light.
"""
