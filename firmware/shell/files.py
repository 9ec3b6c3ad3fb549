# Files on flash, one way to replace one: used by every shell module that keeps state across reboots.
import os


def write_atomic(path, text):
    """Replace `path` with `text` so that a power cut leaves the old file or the new one, never a torn
    one: the text goes to <path>.tmp, then os.rename puts it in place. Raises OSError; the caller
    decides whether that is a fault to show."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT refuses to rename over a file; LittleFS (the ESP32 default) and POSIX do not. Until the
        # second rename, <path>.tmp holds the new content (a reader may fall back to it).
        os.remove(path)
        os.rename(tmp, path)
