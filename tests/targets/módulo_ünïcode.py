"""A module with a non-ASCII file name and function name."""


def función_ñ(expect, lock):
    expect(); lock.acquire()
