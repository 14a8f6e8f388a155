"""Getting a run its data: local files scanned into manifests, uploads stored
by content on the share, and the worker-side checks of the three input kinds
(see orchestrator/domain/inputs.py for the kinds themselves).

- local.py    a file or folder of this machine as a manifest (regular files only)
- uploads.py  content-addressed uploads to the share, through the gateway
- submit.py   a spec's local paths replaced by the uploads of their files
"""
