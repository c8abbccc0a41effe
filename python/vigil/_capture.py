"""Crash records: an exception with its traceback and each frame's locals,
made safe to store — reprs are short and never raise, and values whose name
or dict key looks like a secret (password, token, secret, authorization,
cookie, api keys... the same words `vigil dump --locals` masks) are '***'."""
import reprlib

from . import _vigil

MASKED = "'***'"


class _SafeRepr(reprlib.Repr):
    def __init__(self, limit):
        super().__init__()
        self.maxstring = max(20, limit)
        self.maxother = max(20, limit)
        self.maxlevel = 3

    def repr_dict(self, value, level):
        if level <= 0:
            return "{...}"
        items = []
        for index, key in enumerate(value):
            if index >= self.maxdict:
                items.append("...")
                break
            shown = MASKED if isinstance(key, str) and _vigil.looks_secret(key) else self.repr1(value[key], level - 1)
            items.append("%s: %s" % (self.repr1(key, level - 1), shown))
        return "{%s}" % ", ".join(items)

    def repr_instance(self, value, level):
        try:
            return super().repr_instance(value, level)
        except Exception as error:  # a broken __repr__ must not hide the crash
            return "<%s object (repr failed: %s)>" % (type(value).__name__, type(error).__name__)


def safe_repr(value, limit):
    try:
        text = _SafeRepr(limit).repr(value)
    except Exception as error:
        text = "<%s object (repr failed: %s)>" % (type(value).__name__, type(error).__name__)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(exception):
    kind = type(exception)
    name = getattr(kind, "__qualname__", kind.__name__)
    return name if kind.__module__ == "builtins" else "%s.%s" % (kind.__module__, name)


def _frames(exception, limit):
    frames = []
    traceback = exception.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        code = frame.f_code
        local_values = [(name, MASKED if _vigil.looks_secret(name) else safe_repr(value, limit))
                        for name, value in frame.f_locals.items()]
        frames.append((getattr(code, "co_qualname", code.co_name), code.co_filename,
                       traceback.tb_lineno, local_values))
        traceback = traceback.tb_next
    return frames


def exception_record(exception, limit):
    """(type, message, [(function, file, line, [(name, repr)])]), outermost frame first."""
    try:
        message = str(exception)
    except Exception:
        message = "<str() failed>"
    if len(message) > 4 * limit:
        message = message[: 4 * limit - 3] + "..."
    return _type_name(exception), message, _frames(exception, limit)
