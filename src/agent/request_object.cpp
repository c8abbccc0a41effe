// vigil.request: one request of the application, as a context manager (and,
// through vigil._decorate, a decorator). Its begin and end are the agent's
// hot path: no lock, no allocation beyond the object itself, no I/O.
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>

#include "agent/runtime.h"
// After Python.h, which runtime.h includes.
#include <structmember.h>

namespace vigil::agent {
namespace {

enum class Phase { kNew, kRunning, kEnded };

struct RequestObject {
    PyObject_HEAD PyObject* name;  // str
    PyObject* user;                // str or None
    PyObject* attributes;          // dict, or null when there are none
    PyObject* txnText;             // str, made at first use
    PyObject* token;               // the context variable's token while running
    Agent* agent;                  // where it was registered; agents are never freed
    int64_t slot;                  // in the agent's table, or -1
    int64_t startNs;
    int64_t startMonotonicNs;
    int64_t endMonotonicNs;
    Phase phase;
    uint32_t txnLength;
    char txn[TxnIdSource::kMaxLength + 1];
};

// Bumped in the child after fork: per-thread caches of the parent are stale.
std::atomic<uint64_t> forkGeneration{0};

struct ThreadCache {
    uint64_t generation = ~uint64_t{0};
    pid_t nativeId = 0;
    uint32_t slotHint = 0;
    uint32_t depth = 0;  // requests running on this thread
};
thread_local ThreadCache threadCache;

ThreadCache& thisThread() {
    uint64_t generation = forkGeneration.load(std::memory_order_relaxed);
    if (threadCache.generation != generation) {
        threadCache.generation = generation;
        threadCache.nativeId = gettid();
    }
    return threadCache;
}

std::string_view utf8(PyObject* text) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(text, &size);
    if (!data) {
        PyErr_Clear();  // lone surrogates: the table gets an empty field
        return {};
    }
    return {data, static_cast<size_t>(size)};
}

// str(value) for the table; a new reference, or null with no error set.
PyObject* asText(PyObject* value) {
    if (PyUnicode_Check(value)) {
        Py_INCREF(value);
        return value;
    }
    PyObject* text = PyObject_Str(value);
    if (!text) PyErr_Clear();
    return text;
}

uint64_t interpreterOf(PyThreadState* state) {
#if PY_VERSION_HEX >= 0x03090000
    return reinterpret_cast<uint64_t>(PyThreadState_GetInterpreter(state));
#else
    return reinterpret_cast<uint64_t>(state->interp);
#endif
}

// Writes the request into a free slot of the agent's table.
void registerRequest(RequestObject* self, Agent& agent, ThreadCache& thread) {
    StateFile& state = agent.state();
    state.counters().requestsStarted.fetch_add(1, std::memory_order_relaxed);
    auto slot = state.claim(thread.slotHint);
    if (!slot) {
        state.counters().requestsUntracked.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    constexpr size_t kMaxAttributes = 16;
    std::array<std::pair<std::string_view, std::string_view>, kMaxAttributes> pairs;
    std::array<PyObject*, kMaxAttributes> texts{};
    size_t count = 0;
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (self->attributes && count < kMaxAttributes &&
           PyDict_Next(self->attributes, &position, &key, &value)) {
        texts[count] = asText(value);
        if (!texts[count] || !PyUnicode_Check(key)) {
            Py_CLEAR(texts[count]);
            continue;
        }
        pairs[count] = {utf8(key), utf8(texts[count])};
        ++count;
    }
    PyObject* user = self->user == Py_None ? nullptr : asText(self->user);
    PyThreadState* threadState = PyThreadState_Get();
    RequestStart start{
        .txn = {self->txn, self->txnLength},
        .name = utf8(self->name),
        .user = user ? utf8(user) : std::string_view{},
        .attributes = {pairs.data(), count},
        .nativeThreadId = thread.nativeId,
        .threadId = static_cast<uint64_t>(PyThread_get_thread_ident()),
        .threadState = reinterpret_cast<uint64_t>(threadState),
        .interpreter = interpreterOf(threadState),
        .depth = thread.depth,
    };
    state.begin(*slot, start, agent.nextSerial(), self->startNs, self->startMonotonicNs);
    Py_XDECREF(user);
    for (size_t index = 0; index < count; ++index) Py_DECREF(texts[index]);
    thread.slotHint = *slot;
    self->slot = *slot;
    self->agent = &agent;
}

void unregisterRequest(RequestObject* self) {
    Agent* agent = self->agent;
    // A request begun before fork belongs to the parent's table.
    if (!agent || agent != currentAgent()) return;
    agent->state().release(static_cast<uint32_t>(self->slot));
    agent->state().counters().requestsFinished.fetch_add(1, std::memory_order_relaxed);
    self->slot = -1;
}

PyObject* requestNew(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
    PyObject* name = nullptr;
    PyObject* user = Py_None;
    if (!PyArg_ParseTuple(args, "U|O:request", &name, &user)) return nullptr;
    PyObject* attributes = nullptr;
    if (kwargs && PyDict_GET_SIZE(kwargs) > 0) {
        // A copy: f(**d) may hand the caller's own dict over.
        attributes = PyDict_Copy(kwargs);
        if (!attributes) return nullptr;
        PyObject* given = PyDict_GetItemString(attributes, "user");
        if (given) {
            if (user != Py_None) {
                Py_DECREF(attributes);
                PyErr_SetString(PyExc_TypeError, "request() got user twice");
                return nullptr;
            }
            user = given;
        }
    }
    auto* self = reinterpret_cast<RequestObject*>(type->tp_alloc(type, 0));
    if (!self) {
        Py_XDECREF(attributes);
        return nullptr;
    }
    Py_INCREF(name);
    self->name = name;
    Py_INCREF(user);
    self->user = user;
    if (attributes && PyDict_GetItemString(attributes, "user"))
        PyDict_DelItemString(attributes, "user");
    self->attributes = attributes;
    self->slot = -1;
    self->phase = Phase::kNew;
    self->txnLength = static_cast<uint32_t>(txnIds().next(self->txn));
    return reinterpret_cast<PyObject*>(self);
}

void requestDealloc(PyObject* object) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    // Dropped while running (a generator never resumed): free its slot.
    if (self->phase == Phase::kRunning && self->slot >= 0) unregisterRequest(self);
    Py_XDECREF(self->name);
    Py_XDECREF(self->user);
    Py_XDECREF(self->attributes);
    Py_XDECREF(self->txnText);
    Py_XDECREF(self->token);
    Py_TYPE(object)->tp_free(object);
}

PyObject* requestEnter(PyObject* object, PyObject*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (self->phase != Phase::kNew) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a vigil request runs once: make a new vigil.request(...) for each");
        return nullptr;
    }
    PyObject* token = PyContextVar_Set(transactionVariable(), object);
    if (!token) return nullptr;
    self->token = token;
    self->phase = Phase::kRunning;
    self->startNs = clockNs(CLOCK_REALTIME);
    self->startMonotonicNs = clockNs(CLOCK_MONOTONIC);
    ThreadCache& thread = thisThread();
    Agent* agent = currentAgent();
    if (agent && agent->running()) registerRequest(self, *agent, thread);
    ++thread.depth;
    Py_INCREF(object);
    return object;
}

PyObject* requestExit(PyObject* object, PyObject*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (self->phase != Phase::kRunning) Py_RETURN_FALSE;
    self->phase = Phase::kEnded;
    self->endMonotonicNs = clockNs(CLOCK_MONOTONIC);
    if (self->slot >= 0) unregisterRequest(self);
    ThreadCache& thread = thisThread();
    if (thread.depth > 0) --thread.depth;
    // Reset fails when exit runs in another context than enter (an ASGI
    // server that ends a request from another task): the variable then just
    // keeps its value in that other context.
    if (PyContextVar_Reset(transactionVariable(), self->token) < 0) PyErr_Clear();
    Py_CLEAR(self->token);
    Py_RETURN_FALSE;
}

PyObject* requestCall(PyObject* object, PyObject* args, PyObject* kwargs) {
    // @vigil.request("name"): the decorator lives in Python.
    PyObject* module = PyImport_ImportModule("vigil");
    if (!module) return nullptr;
    PyObject* decorate = PyObject_GetAttrString(module, "_decorate");
    Py_DECREF(module);
    if (!decorate) return nullptr;
    PyObject* selfAndArgs = PyTuple_New(PyTuple_GET_SIZE(args) + 1);
    if (!selfAndArgs) {
        Py_DECREF(decorate);
        return nullptr;
    }
    Py_INCREF(object);
    PyTuple_SET_ITEM(selfAndArgs, 0, object);
    for (Py_ssize_t index = 0; index < PyTuple_GET_SIZE(args); ++index) {
        PyObject* item = PyTuple_GET_ITEM(args, index);
        Py_INCREF(item);
        PyTuple_SET_ITEM(selfAndArgs, index + 1, item);
    }
    PyObject* result = PyObject_Call(decorate, selfAndArgs, kwargs);
    Py_DECREF(selfAndArgs);
    Py_DECREF(decorate);
    return result;
}

PyObject* getTxn(PyObject* object, void*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (!self->txnText) self->txnText = PyUnicode_FromStringAndSize(self->txn, self->txnLength);
    Py_XINCREF(self->txnText);
    return self->txnText;
}

PyObject* getAttributes(PyObject* object, void*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    return self->attributes ? PyDict_Copy(self->attributes) : PyDict_New();
}

PyObject* getElapsed(PyObject* object, void*) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (self->phase == Phase::kNew) Py_RETURN_NONE;
    int64_t end = self->phase == Phase::kEnded ? self->endMonotonicNs : clockNs(CLOCK_MONOTONIC);
    return PyFloat_FromDouble(static_cast<double>(end - self->startMonotonicNs) / 1e9);
}

PyObject* getRunning(PyObject* object, void*) {
    return PyBool_FromLong(reinterpret_cast<RequestObject*>(object)->phase == Phase::kRunning);
}

PyObject* requestRepr(PyObject* object) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    return PyUnicode_FromFormat("<vigil.request %s %R>", self->txn, self->name);
}

PyMethodDef requestMethods[] = {
    {"__enter__", requestEnter, METH_NOARGS, "Begins the request."},
    {"__exit__", requestExit, METH_VARARGS, "Ends the request."},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef requestMembers[] = {
    {"name", T_OBJECT, offsetof(RequestObject, name), READONLY, "The request's name."},
    {"user", T_OBJECT, offsetof(RequestObject, user), READONLY, "Who made it, or None."},
    {nullptr, 0, 0, 0, nullptr},
};

PyGetSetDef requestGetters[] = {
    {"txn", getTxn, nullptr, "The transaction id, e.g. angry_einstein_7f3a.", nullptr},
    {"attributes", getAttributes, nullptr, "A copy of the request's attributes.", nullptr},
    {"elapsed", getElapsed, nullptr, "Seconds since it began (its duration once ended).", nullptr},
    {"running", getRunning, nullptr, "True between begin and end.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

}  // namespace

PyTypeObject RequestType = {PyVarObject_HEAD_INIT(nullptr, 0)};

bool readyRequestType() {
    RequestType.tp_name = "vigil.request";
    RequestType.tp_basicsize = sizeof(RequestObject);
    RequestType.tp_flags = Py_TPFLAGS_DEFAULT;
    RequestType.tp_doc =
        "request(name, user=None, **attributes): one request of the application.\n\n"
        "Use it as a context manager (with vigil.request(...) as r) or a decorator.";
    RequestType.tp_new = requestNew;
    RequestType.tp_dealloc = requestDealloc;
    RequestType.tp_call = requestCall;
    RequestType.tp_repr = requestRepr;
    RequestType.tp_methods = requestMethods;
    RequestType.tp_members = requestMembers;
    RequestType.tp_getset = requestGetters;
    pthread_atfork(nullptr, nullptr,
                   [] { forkGeneration.fetch_add(1, std::memory_order_relaxed); });
    return PyType_Ready(&RequestType) == 0;
}

}  // namespace vigil::agent
