"""Docstring inheritance: an overriding method without a docstring takes its base's."""


def inherit_docs(cls):
    for name, member in vars(cls).items():
        func = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
        if not callable(func) or getattr(func, "__doc__", None):
            continue
        for base in cls.__mro__[1:]:
            doc = getattr(getattr(base, name, None), "__doc__", None)
            if doc:
                try:
                    func.__doc__ = doc
                except (AttributeError, TypeError):
                    pass
                break
    return cls
