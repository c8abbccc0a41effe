// The extension module vigil._vigil: the agent inside the Python process.
// The Python package vigil (python/vigil/) is the API people use; this
// module is what it stands on.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/runtime.h"
#include "agent/tracer.h"
#include "core/errors.h"
#include "core/objects.h"

namespace vigil::agent {
namespace {

// Agents are never freed: requests that began under one may still end after
// it stopped, and an agent inherited through fork has a thread and locks of
// the parent's. Each start makes one; there are few.
Agent* agent = nullptr;
std::vector<Agent*> retiredAgents;
std::unique_ptr<TxnIdSource> ids;
std::string idsDir;
PyObject* transactionVar = nullptr;
PyObject* configError = nullptr;

// The running agent, else the last one started (stopped, or the parent's
// in a forked child whose own agent failed to start); null before any start.
Agent* lastAgent() {
    if (agent) return agent;
    return retiredAgents.empty() ? nullptr : retiredAgents.back();
}

PyObject* raise(const Error& error) {
    PyErr_SetString(error.code() == ExitCode::kConfig ? configError : PyExc_OSError, error.what());
    return nullptr;
}

void openIds(const std::string& dir) {
    if (ids && dir == idsDir) return;
    ids = std::make_unique<TxnIdSource>(TxnIdSource::open(dir));
    idsDir = dir;
}

// vigil.start(**overrides) as text pairs; false with an exception set.
bool readOverrides(PyObject* overrides, ConfigSource& source) {
    if (!overrides || overrides == Py_None) return true;
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(overrides, &position, &key, &value)) {
        PyObject* text = PyObject_Str(value);
        const char* keyText = PyUnicode_AsUTF8(key);
        const char* valueText = text ? PyUnicode_AsUTF8(text) : nullptr;
        if (keyText && valueText) source.overrides.emplace_back(keyText, valueText);
        Py_XDECREF(text);
        if (!keyText || !valueText) return false;
    }
    return true;
}

void retire() {
    if (!agent) return;
    Py_BEGIN_ALLOW_THREADS agent->stop();
    Py_END_ALLOW_THREADS retiredAgents.push_back(agent);
    agent = nullptr;
}

bool startWith(const AgentConfig& config, const ConfigSource& source) {
    try {
        openIds(config.stateDir);
        agent = new Agent(config, source);
        if (!ids->fallbackReason().empty()) {
            nlohmann::json line = {{"event", "agent_warning"}, {"warning", ids->fallbackReason()}};
            agent->log().write(LogLevel::kWarning, line.dump());
        }
        return true;
    } catch (const Error& error) {
        raise(error);
        return false;
    }
}

PyObject* start(PyObject*, PyObject* args) {
    const char* path = nullptr;
    PyObject* overrides = nullptr;
    if (!PyArg_ParseTuple(args, "z|O!:start", &path, &PyDict_Type, &overrides)) return nullptr;
    if (agent) Py_RETURN_FALSE;  // one agent per process
    ConfigSource source{path ? path : "", {}};
    if (!readOverrides(overrides, source)) return nullptr;
    AgentConfig config;
    try {
        config = loadConfig(source);
    } catch (const Error& error) {
        return raise(error);
    }
    if (!config.enabled) Py_RETURN_FALSE;
    if (!startWith(config, source)) return nullptr;
    Py_RETURN_TRUE;
}

// vigil.reload(): the rules again from the same file, environment and
// overrides; ConfigError leaves the rules in force.
PyObject* reload(PyObject*, PyObject*) {
    if (!agent) Py_RETURN_FALSE;
    try {
        agent->reload(loadConfig(agent->source()));
    } catch (const Error& error) {
        return raise(error);
    }
    Py_RETURN_TRUE;
}

PyObject* looksSecretName(PyObject*, PyObject* name) {
    const char* text = PyUnicode_AsUTF8(name);
    if (!text) return nullptr;
    return PyBool_FromLong(looksSecret(text));
}

PyObject* stop(PyObject*, PyObject*) {
    retire();
    Py_RETURN_NONE;
}

// Around fork (os.register_at_fork): the store's writer thread finishes its
// batch and closes its database first, so that no SQLite lock or half-done
// transaction is copied into the child.
PyObject* beforeFork(PyObject*, PyObject*) {
    if (agent && agent->store()) {
        Py_BEGIN_ALLOW_THREADS agent->store()->pause();
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

PyObject* afterForkInParent(PyObject*, PyObject*) {
    if (agent && agent->store()) agent->store()->resume();
    Py_RETURN_NONE;
}

// In the child after fork (os.register_at_fork): the parent's agent stays
// the parent's; the child gets its own state file and watchdog.
PyObject* afterForkInChild(PyObject*, PyObject*) {
    if (!agent || agent->pid() == getpid()) Py_RETURN_NONE;
    Agent* parent = agent;
    retiredAgents.push_back(parent);  // not stopped: its thread is not ours
    agent = nullptr;
    if (!startWith(parent->config(), parent->source())) return nullptr;
    Py_RETURN_NONE;
}

PyObject* isRunning(PyObject*, PyObject*) {
    return PyBool_FromLong(agent && agent->running());
}

PyObject* statePath(PyObject*, PyObject*) {
    if (!agent) Py_RETURN_NONE;
    return PyUnicode_FromString(agent->state().path().c_str());
}

PyObject* stringList(const std::vector<std::string>& items) {
    PyObject* list = PyList_New(0);
    for (const std::string& item : items) {
        PyObject* text = list ? PyUnicode_FromStringAndSize(item.data(), item.size()) : nullptr;
        if (!text || PyList_Append(list, text) < 0) Py_CLEAR(list);
        Py_XDECREF(text);
    }
    return list;
}

PyObject* settings(PyObject*, PyObject*) {
    Agent* last = lastAgent();
    if (!last) Py_RETURN_NONE;
    const AgentConfig& config = last->config();
    return Py_BuildValue("{s:s,s:s,s:s,s:s,s:N,s:N,s:s,s:O,s:L}", "logger", config.logger.c_str(),
                         "header", config.header.c_str(), "log_path", config.logPath.c_str(),
                         "service", config.service.c_str(), "trace_packages",
                         stringList(config.tracePackages), "trace_paths",
                         stringList(config.tracePaths), "trace_dir", config.traceDir.c_str(),
                         "trace_create_dir", config.traceCreateDir ? Py_True : Py_False,
                         "trace_max_size", static_cast<long long>(config.traceMaxSize));
}

// The agent's counters (the state file's), for tests and for applications
// that export them.
PyObject* counters(PyObject*, PyObject*) {
    if (!agent) Py_RETURN_NONE;
    const StateCounters& c = agent->state().counters();
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "requests_started",
                         c.requestsStarted.load(), "requests_finished", c.requestsFinished.load(),
                         "requests_untracked", c.requestsUntracked.load(), "long_request_reports",
                         c.longRequestReports.load(), "log_lines_written", c.logLinesWritten.load(),
                         "log_lines_dropped", c.logLinesDropped.load(), "stack_walks_failed",
                         c.stackWalksFailed.load(), "records_dropped", c.recordsDropped.load(),
                         "request_log_lines", c.requestLogLines.load(), "reloads", c.reloads.load(),
                         "store_dropped", agent->store() ? agent->store()->dropped() : 0ULL);
}

PyObject* nextTxn(PyObject*, PyObject*) {
    char text[TxnIdSource::kMaxLength + 1];
    size_t length = txnIds().next(text);
    return PyUnicode_FromStringAndSize(text, static_cast<Py_ssize_t>(length));
}

PyObject* currentRequest(PyObject*, PyObject*) {
    PyObject* value = nullptr;
    if (PyContextVar_Get(transactionVar, Py_None, &value) < 0) return nullptr;
    return value;
}

PyObject* currentTransaction(PyObject* module, PyObject*) {
    PyObject* request = currentRequest(module, nullptr);
    if (!request || request == Py_None) return request;
    PyObject* txn = PyObject_GetAttrString(request, "txn");
    Py_DECREF(request);
    return txn;
}

// Sends the agent's lines to stdlib logging: waits (without the GIL) up to
// timeout_ms for one, calls emit(level, line) with it; False once the agent
// stopped and every line was sent.
PyObject* pumpLog(PyObject*, PyObject* args) {
    PyObject* emit = nullptr;
    int timeoutMs = 0;
    if (!PyArg_ParseTuple(args, "Oi:pump_log", &emit, &timeoutMs)) return nullptr;
    // Even once stopped, what the agent queued still goes out.
    Agent* current = lastAgent();
    if (!current) Py_RETURN_FALSE;
    std::optional<LogLine> line;
    Py_BEGIN_ALLOW_THREADS line = current->log().nextForLogger(timeoutMs);
    Py_END_ALLOW_THREADS if (line) {
        PyObject* result =
            PyObject_CallFunction(emit, "is#", static_cast<int>(line->level), line->text.data(),
                                  static_cast<Py_ssize_t>(line->text.size()));
        if (!result) return nullptr;
        Py_DECREF(result);
    }
    return PyBool_FromLong(!current->log().drained());
}

PyMethodDef functions[] = {
    {"start", start, METH_VARARGS,
     "start(config_path, overrides) -> bool: starts the agent (False if running or disabled)."},
    {"stop", stop, METH_NOARGS, "Stops the agent and removes its state file."},
    {"reload", reload, METH_NOARGS, "Reads the rules again; False when no agent runs."},
    {"looks_secret", looksSecretName, METH_O, "Whether a name looks like it holds a secret."},
    {"before_fork", beforeFork, METH_NOARGS, "Quiets the store before fork."},
    {"after_fork_in_parent", afterForkInParent, METH_NOARGS, "Resumes the store after fork."},
    {"after_fork_in_child", afterForkInChild, METH_NOARGS, "Gives a forked child its own agent."},
    {"running", isRunning, METH_NOARGS, "Whether the agent runs."},
    {"state_path", statePath, METH_NOARGS, "The agent's shared-memory state file, or None."},
    {"settings", settings, METH_NOARGS, "What the Python side needs of the configuration."},
    {"next_txn", nextTxn, METH_NOARGS, "A new transaction id."},
    {"counters", counters, METH_NOARGS, "The agent's counters, or None when it does not run."},
    {"current_request", currentRequest, METH_NOARGS, "The running request of this context."},
    {"current_transaction", currentTransaction, METH_NOARGS,
     "The transaction id of the running request of this context, or None."},
    {"pump_log", pumpLog, METH_VARARGS, "Sends the agent's log lines to stdlib logging."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef moduleDef = {
    PyModuleDef_HEAD_INIT,
    "vigil._vigil",
    "The vigil agent, inside the Python process.",
    -1,
    functions,
};

}  // namespace

Agent* currentAgent() {
    return agent;
}

Agent* lastStartedAgent() {
    return lastAgent();
}

TxnIdSource& txnIds() {
    if (ids) return *ids;
    // Requests before (or without) vigil.start(): the environment still says
    // where the shared counter lives.
    std::string dir = AgentConfig{}.stateDir;
    try {
        dir = loadAgentConfig("").stateDir;
    } catch (const Error&) {
        // A bad variable is reported by vigil.start(); ids go on meanwhile.
    }
    openIds(dir);
    return *ids;
}

PyObject* transactionVariable() {
    return transactionVar;
}

}  // namespace vigil::agent

PyMODINIT_FUNC PyInit__vigil() {
    using namespace vigil::agent;
    if (!readyRequestType() || !readyWsgiTypes()) return nullptr;
    PyObject* module = PyModule_Create(&moduleDef);
    if (!module) return nullptr;
    // The execution recorder's trace_* functions (tracer.cpp).
    if (!addTraceFunctions(module)) {
        Py_DECREF(module);
        return nullptr;
    }
    transactionVar = PyContextVar_New("vigil_request", nullptr);
    configError = PyErr_NewExceptionWithDoc("vigil.ConfigError",
                                            "The agent's configuration is wrong: the message "
                                            "names the file or variable, the key and why.",
                                            PyExc_ValueError, nullptr);
    Py_INCREF(&RequestType);
    Py_INCREF(&WsgiMiddlewareType);
    if (!transactionVar || !configError ||
        PyModule_AddObject(module, "request", reinterpret_cast<PyObject*>(&RequestType)) < 0 ||
        PyModule_AddObject(module, "WSGIMiddleware",
                           reinterpret_cast<PyObject*>(&WsgiMiddlewareType)) < 0 ||
        PyModule_AddObject(module, "ConfigError", configError) < 0) {
        Py_DECREF(module);
        return nullptr;
    }
    Py_INCREF(configError);  // AddObject stole one; the module keeps using it
    return module;
}
