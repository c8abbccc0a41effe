"""Known control flow for the execution recorder's tests: how often each
line runs is fixed by the arguments, whatever the interpreter.

Every construct the recorder must follow is here once: loops of known
counts (one on a single line, which jumps back to its own line), branches,
recursion, exceptions caught (raised here and inside a C function) and
uncaught (out of the package, and out of a thread), generators (exhausted,
closed while suspended), a comprehension, a call through code outside the
package that calls back in, three asyncio tasks taking turns, two threads.
"""
import asyncio
import threading

import untraced_helper


def loop_sum(count):
    total = 0
    for index in range(count):
        if index % 3 == 0:
            total += index
        elif index % 3 == 1:
            total -= 1
        else:
            pass
    while total > 10: total -= 7  # noqa: E701 (one line, on purpose)
    return total


def recurse(depth):
    if depth == 0:
        return 0
    return 1 + recurse(depth - 1)


def fail(kind):
    if kind == "value":
        raise ValueError(kind)
    return {}[kind]  # a KeyError raised inside a C function


def caught():
    count = 0
    for kind in ("value", "key"):
        try:
            fail(kind)
        except (ValueError, KeyError):
            count += 1
        finally:
            count += 10
    return count


def uncaught():
    fail("value")  # leaves the package: the caller outside catches it


def countdown(count):
    while count:
        yield count
        count -= 1


def generators():
    values = list(countdown(4))
    squares = [value * value for value in values]
    suspended = countdown(3)
    first = next(suspended)
    suspended.close()  # GeneratorExit thrown into the suspended generator
    return sum(squares) + first


def through_outside(count):
    return untraced_helper.call_each(lambda value: value + 1, range(count))


async def worker(name, steps, log):
    for step in range(steps):
        log.append((name, step))
        await asyncio.sleep(0)
    return name


async def interleaved():
    log = []
    names = await asyncio.gather(worker("a", 3, log), worker("b", 2, log), worker("c", 4, log))
    return names, log


def in_thread(results, index):
    untraced_helper.note_thread()
    results[index] = loop_sum(5 + index) + recurse(3)
    if index == 1:
        fail("value")  # uncaught: the thread ends with it


def threads():
    results = [None, None]
    started = [threading.Thread(target=in_thread, args=(results, index), name="worker-%d" % index)
               for index in range(2)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return results


def run():
    outcome = [loop_sum(10), recurse(5), caught(), generators(), through_outside(3)]
    try:
        uncaught()
    except ValueError:
        outcome.append("uncaught")
    outcome.append(asyncio.run(interleaved()))
    outcome.append(threads())
    return outcome


def record_inside(start, stop):
    start()  # the recording begins with this frame on the stack
    total = loop_sum(2)
    stop()
    return total


def parked(ready, go):
    ready.set()
    go.wait()  # the recording starts while the thread waits here
    return loop_sum(2)
