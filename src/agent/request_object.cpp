// vigil.request: one request of the application, as a context manager (and,
// through vigil._decorate, a decorator). Its begin and end are the agent's
// hot path: no lock, no allocation beyond the object itself, no I/O.
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include <array>
#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "agent/runtime.h"
// After Python.h, which runtime.h includes.
#include <structmember.h>

namespace vigil::agent {
namespace {

enum class Phase { kNew, kRunning, kEnded };

struct RequestObject {
    PyObject ob_base;       // PyObject_HEAD, spelled so that formatters read it
    PyObject* name;         // str
    PyObject* user;         // str or None
    PyObject* attributes;   // dict, or null when there are none
    PyObject* txnText;      // str, made at first use
    PyObject* token;        // the context variable's token while running
    PyObject* exception;    // recorded by record_exception(), or null
    Agent* agent;           // where it was registered; agents are never freed
    int64_t slot;           // in the agent's table, or -1
    uint64_t serial;        // its number in the agent's table
    RuleDecision decision;  // what the rules may keep of it
    int64_t cpuStartNs;     // the thread's CPU clock at begin, when a rule may log it
    int64_t startNs;
    int64_t startMonotonicNs;
    int64_t endMonotonicNs;
    int status;  // HTTP status, set by a middleware; 0 = none
    bool profiled;
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
    uint32_t depth = 0;   // requests running on this thread
    uint64_t random = 0;  // randomDraw's state
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

// The request's user and attributes as text, for the rules, the table and
// the record; holds the str() objects the views point into.
class RequestTexts {
  public:
    static constexpr size_t kMaxAttributes = 16;

    explicit RequestTexts(const RequestObject* request) {
        Py_ssize_t position = 0;
        PyObject *key, *value;
        while (request->attributes && count_ < kMaxAttributes &&
               PyDict_Next(request->attributes, &position, &key, &value)) {
            if (!PyUnicode_Check(key) || !(texts_[count_] = asText(value))) continue;
            pairs_[count_] = {utf8(key), utf8(texts_[count_])};
            ++count_;
        }
        if (request->user != Py_None) user_ = asText(request->user);
    }
    ~RequestTexts() {
        for (size_t index = 0; index < count_; ++index) Py_DECREF(texts_[index]);
        Py_XDECREF(user_);
    }
    RequestTexts(const RequestTexts&) = delete;
    RequestTexts& operator=(const RequestTexts&) = delete;

    std::string_view user() const { return user_ ? utf8(user_) : std::string_view{}; }
    std::span<const std::pair<std::string_view, std::string_view>> attributes() const {
        return {pairs_.data(), count_};
    }

  private:
    std::array<std::pair<std::string_view, std::string_view>, kMaxAttributes> pairs_;
    std::array<PyObject*, kMaxAttributes> texts_{};
    size_t count_ = 0;
    PyObject* user_ = nullptr;
};

// A uniform 64-bit draw per request, for the rules' sampling ratios
// (splitmix64: https://prng.di.unimi.it/splitmix64.c).
uint64_t randomDraw(ThreadCache& thread) {
    if (thread.random == 0 && getrandom(&thread.random, sizeof(thread.random), 0) < 0)
        thread.random = static_cast<uint64_t>(clockNs(CLOCK_MONOTONIC)) ^ thread.nativeId;
    uint64_t z = (thread.random += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int64_t threadCpuNs() {
    return clockNs(CLOCK_THREAD_CPUTIME_ID);
}

// Asks the rules what to keep of the request, and writes it into a free
// slot of the agent's table.
void registerRequest(RequestObject* self, Agent& agent, ThreadCache& thread) {
    StateFile& state = agent.state();
    state.counters().requestsStarted.fetch_add(1, std::memory_order_relaxed);
    self->agent = &agent;
    RequestTexts texts(self);
    self->decision =
        agent.rules().begin(utf8(self->name), texts.user(), texts.attributes(), randomDraw(thread));
    // The thread's CPU clock is a system call: read only for requests a log
    // or profile rule may keep (every request may crash, but a crash record
    // goes without its CPU time).
    if (self->decision.actions & (kLog | kProfile)) self->cpuStartNs = threadCpuNs();
    auto slot = state.claim(thread.slotHint);
    if (!slot) {
        state.counters().requestsUntracked.fetch_add(1, std::memory_order_relaxed);
        return;  // not in the table: the watchdog cannot sample it either
    }
    self->profiled = (self->decision.actions & kProfile) != 0;
    // The first profiled request wakes the watchdog from its long sleep:
    // it samples at the profile rate from now on.
    if (self->profiled && agent.profiled().fetch_add(1, std::memory_order_relaxed) == 0)
        agent.wakeup().post(kReportProfile);
    PyThreadState* threadState = PyThreadState_Get();
    RequestStart start{
        .txn = {self->txn, self->txnLength},
        .name = utf8(self->name),
        .user = texts.user(),
        .attributes = texts.attributes(),
        .nativeThreadId = thread.nativeId,
        .threadId = static_cast<uint64_t>(PyThread_get_thread_ident()),
        .threadState = reinterpret_cast<uint64_t>(threadState),
        .interpreter = interpreterOf(threadState),
        .depth = thread.depth,
        .flags = self->profiled ? RequestSlot::kProfiled : 0,
    };
    self->serial = agent.nextSerial();
    state.begin(*slot, start, self->serial, self->startNs, self->startMonotonicNs);
    thread.slotHint = *slot;
    self->slot = *slot;
}

bool failed(const RequestObject* self, PyObject* exception) {
    return (exception && exception != Py_None) || self->exception || self->status >= 500;
}

// What the store and the request log get of an ended request.
FinishedRequest recordOf(const RequestObject* self, Agent& agent, int64_t durationNs,
                         bool failure) {
    RequestTexts texts(self);
    FinishedRequest record;
    record.txn.assign(self->txn, self->txnLength);
    record.name = utf8(self->name);
    record.user = texts.user();
    record.service = agent.state().header().service;
    record.pid = agent.pid();
    record.nativeThreadId = threadCache.nativeId;
    record.startNs = self->startNs;
    record.durationNs = durationNs;
    record.cpuNs =
        self->decision.actions & (kLog | kProfile) ? threadCpuNs() - self->cpuStartNs : -1;
    record.outcome = failure ? "error" : "ok";
    record.httpStatus = self->status;
    for (const auto& [key, value] : texts.attributes()) record.attributes.emplace_back(key, value);
    return record;
}

std::string textOf(PyObject* object) {
    PyObject* text = asText(object);
    std::string result(text ? utf8(text) : std::string_view{});
    Py_XDECREF(text);
    return result;
}

std::vector<std::pair<std::string, std::string>> localsOf(PyObject* items) {
    std::vector<std::pair<std::string, std::string>> locals;
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(items); ++index) {
        PyObject* item = PyList_GET_ITEM(items, index);
        locals.emplace_back(textOf(PyTuple_GET_ITEM(item, 0)), textOf(PyTuple_GET_ITEM(item, 1)));
    }
    return locals;
}

// The exception's type, message and traceback with each frame's locals,
// made safe (truncated reprs, secrets masked) by vigil._capture.
std::optional<ExceptionRecord> captureException(PyObject* exception, int maxRepr) {
    PyObject* module = PyImport_ImportModule("vigil._capture");
    PyObject* captured =
        module ? PyObject_CallMethod(module, "exception_record", "Oi", exception, maxRepr)
               : nullptr;
    Py_XDECREF(module);
    if (!captured) {
        PyErr_Clear();  // a crash report that fails must not become a second crash
        return std::nullopt;
    }
    ExceptionRecord record;
    PyObject *type, *message, *frames;
    if (PyArg_ParseTuple(captured, "OOO!", &type, &message, &PyList_Type, &frames)) {
        record.type = textOf(type);
        record.message = textOf(message);
        for (Py_ssize_t index = 0; index < PyList_GET_SIZE(frames); ++index) {
            PyObject *function, *file, *locals;
            int line = 0;
            if (!PyArg_ParseTuple(PyList_GET_ITEM(frames, index), "OOiO!", &function, &file, &line,
                                  &PyList_Type, &locals))
                break;
            record.stack.push_back({textOf(function), textOf(file), line, localsOf(locals)});
        }
    }
    PyErr_Clear();
    Py_DECREF(captured);
    return record;
}

// Ends the request's life in the agent: its slot, and, when keep, what the
// rules keep of it.
void finishRequest(RequestObject* self, PyObject* exception, bool keep) {
    Agent* agent = self->agent;
    // A request begun before fork belongs to the parent's agent.
    if (!agent || agent != currentAgent()) return;
    int64_t duration = self->endMonotonicNs - self->startMonotonicNs;
    bool failure = failed(self, exception);
    uint8_t held = RuleSet::end(self->decision, duration, failure);
    if (self->profiled) agent->profiled().fetch_sub(1, std::memory_order_relaxed);
    if (self->slot >= 0) {
        agent->state().release(static_cast<uint32_t>(self->slot));
        self->slot = -1;
    }
    agent->state().counters().requestsFinished.fetch_add(1, std::memory_order_relaxed);
    if (!keep || (!held && !self->profiled)) return;
    Finished finished{recordOf(self, *agent, duration, failure), self->serial, held,
                      self->profiled};
    if (failure && (held & kException)) {
        PyObject* error = self->exception ? self->exception : exception;
        if (error && error != Py_None)
            finished.record.exception = captureException(error, agent->config().maxRepr);
    }
    agent->finished().push(std::move(finished));
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

// A recorded exception leads through its frames back to frames that hold
// the request: the collector must see the request's references to break
// such cycles.
int requestTraverse(PyObject* object, visitproc visit, void* arg) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    Py_VISIT(self->name);
    Py_VISIT(self->user);
    Py_VISIT(self->attributes);
    Py_VISIT(self->token);
    Py_VISIT(self->exception);
    return 0;
}

int requestClear(PyObject* object) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    Py_CLEAR(self->attributes);
    Py_CLEAR(self->token);
    Py_CLEAR(self->exception);  // kept in the crash record if the rules said so
    return 0;
}

void requestDealloc(PyObject* object) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    PyObject_GC_UnTrack(object);
    // Dropped while running (a generator never resumed): its slot is freed,
    // nothing is kept (no Python code may run here).
    if (self->phase == Phase::kRunning) finishRequest(self, nullptr, false);
    requestClear(object);
    Py_XDECREF(self->name);
    Py_XDECREF(self->user);
    Py_XDECREF(self->txnText);
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

PyObject* requestExit(PyObject* object, PyObject* args) {
    endRequest(object, PyTuple_GET_SIZE(args) > 1 ? PyTuple_GET_ITEM(args, 1) : nullptr);
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

PyObject* recordException(PyObject* object, PyObject* exception) {
    auto* self = reinterpret_cast<RequestObject*>(object);
    if (!PyExceptionInstance_Check(exception)) {
        PyErr_SetString(PyExc_TypeError, "record_exception() takes an exception");
        return nullptr;
    }
    Py_INCREF(exception);
    Py_XSETREF(self->exception, exception);
    Py_RETURN_NONE;
}

PyMethodDef requestMethods[] = {
    {"__enter__", requestEnter, METH_NOARGS, "Begins the request."},
    {"__exit__", requestExit, METH_VARARGS, "Ends the request."},
    {"record_exception", recordException, METH_O,
     "Marks the request failed with this exception (one a framework caught before it could "
     "leave the request): kept as a crash at its end."},
    {nullptr, nullptr, 0, nullptr},
};

PyMemberDef requestMembers[] = {
    {"name", T_OBJECT, offsetof(RequestObject, name), READONLY, "The request's name."},
    {"user", T_OBJECT, offsetof(RequestObject, user), READONLY, "Who made it, or None."},
    {"status", T_INT, offsetof(RequestObject, status), 0,
     "The HTTP status of its response (a middleware sets it); 0 = none; 5xx = failed."},
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

// The same as vigil.request(name, user), __enter__, __exit__, .txn and
// .status, without the Python-level calls: for the WSGI middleware.
PyObject* newRequest(PyObject* name, PyObject* user) {
    auto* self = reinterpret_cast<RequestObject*>(RequestType.tp_alloc(&RequestType, 0));
    if (!self) return nullptr;
    Py_INCREF(name);
    self->name = name;
    Py_INCREF(user);
    self->user = user;
    self->slot = -1;
    self->phase = Phase::kNew;
    self->txnLength = static_cast<uint32_t>(txnIds().next(self->txn));
    return reinterpret_cast<PyObject*>(self);
}

bool beginRequest(PyObject* request) {
    PyObject* entered = requestEnter(request, nullptr);
    Py_XDECREF(entered);
    return entered != nullptr;
}

void endRequest(PyObject* request, PyObject* exception) {
    auto* self = reinterpret_cast<RequestObject*>(request);
    if (self->phase != Phase::kRunning) return;
    self->phase = Phase::kEnded;
    self->endMonotonicNs = clockNs(CLOCK_MONOTONIC);
    finishRequest(self, exception, true);
    ThreadCache& thread = thisThread();
    if (thread.depth > 0) --thread.depth;
    // Reset fails when exit runs in another context than enter (an ASGI
    // server that ends a request from another task): the variable then just
    // keeps its value in that other context.
    if (PyContextVar_Reset(transactionVariable(), self->token) < 0) PyErr_Clear();
    Py_CLEAR(self->token);
}

PyObject* requestTxn(PyObject* request) {
    return getTxn(request, nullptr);
}

void setRequestStatus(PyObject* request, int status) {
    reinterpret_cast<RequestObject*>(request)->status = status;
}

bool readyRequestType() {
    RequestType.tp_name = "vigil.request";
    RequestType.tp_basicsize = sizeof(RequestObject);
    RequestType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
    RequestType.tp_traverse = requestTraverse;
    RequestType.tp_clear = requestClear;
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
