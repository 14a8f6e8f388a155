"""Azure Files (the surface azure-storage-file 2.1.0's FileService uses), stored on disk."""

from emulator.files.routes import FilesService, register
from emulator.files.store import ShareStore, load_account_key

__all__ = ["FilesService", "ShareStore", "load_account_key", "register"]
