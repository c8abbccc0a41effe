// The extension module vigil._vigil: the agent inside the Python process.
// The Python package vigil (python/vigil/) is the API people use; this
// module is what it stands on.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/runtime.h"
#include "core/errors.h"

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

// The config object of the last start, kept to restart the agent after fork.
std::unique_ptr<AgentConfig> lastConfig;

PyObject* raise(const Error& error) {
    PyErr_SetString(error.code() == ExitCode::kConfig ? configError : PyExc_OSError, error.what());
    return nullptr;
}

void openIds(const std::string& dir) {
    if (ids && dir == idsDir) return;
    ids = std::make_unique<TxnIdSource>(TxnIdSource::open(dir));
    idsDir = dir;
}

bool applyOverrides(AgentConfig& config, PyObject* overrides) {
    if (!overrides || overrides == Py_None) return true;
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(overrides, &position, &key, &value)) {
        PyObject* text = PyObject_Str(value);
        if (!text) return false;
        const char* keyText = PyUnicode_AsUTF8(key);
        const char* valueText = PyUnicode_AsUTF8(text);
        if (!keyText || !valueText) {
            Py_DECREF(text);
            return false;
        }
        try {
            applyOverride(config, keyText, valueText, "vigil.start()");
        } catch (const Error& error) {
            Py_DECREF(text);
            raise(error);
            return false;
        }
        Py_DECREF(text);
    }
    return true;
}

void retire() {
    if (!agent) return;
    Py_BEGIN_ALLOW_THREADS agent->stop();
    Py_END_ALLOW_THREADS retiredAgents.push_back(agent);
    agent = nullptr;
}

bool startWith(const AgentConfig& config) {
    try {
        openIds(config.stateDir);
        agent = new Agent(config);
        lastConfig = std::make_unique<AgentConfig>(config);
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
    AgentConfig config;
    try {
        config = loadAgentConfig(path ? path : "");
    } catch (const Error& error) {
        return raise(error);
    }
    if (!applyOverrides(config, overrides)) return nullptr;
    try {
        validateAgentConfig(config, "vigil.start()");
    } catch (const Error& error) {
        return raise(error);
    }
    if (!config.enabled) Py_RETURN_FALSE;
    if (!startWith(config)) return nullptr;
    Py_RETURN_TRUE;
}

PyObject* stop(PyObject*, PyObject*) {
    retire();
    Py_RETURN_NONE;
}

// In the child after fork (os.register_at_fork): the parent's agent stays
// the parent's; the child gets its own state file and watchdog.
PyObject* afterForkInChild(PyObject*, PyObject*) {
    if (!agent || agent->pid() == getpid()) Py_RETURN_NONE;
    retiredAgents.push_back(agent);  // not stopped: its thread is not ours
    agent = nullptr;
    if (!startWith(*lastConfig)) return nullptr;
    Py_RETURN_NONE;
}

PyObject* isRunning(PyObject*, PyObject*) {
    return PyBool_FromLong(agent && agent->running());
}

PyObject* statePath(PyObject*, PyObject*) {
    if (!agent) Py_RETURN_NONE;
    return PyUnicode_FromString(agent->state().path().c_str());
}

PyObject* settings(PyObject*, PyObject*) {
    if (!lastConfig) Py_RETURN_NONE;
    return Py_BuildValue("{s:s,s:s,s:s}", "logger", lastConfig->logger.c_str(), "header",
                         lastConfig->header.c_str(), "log_path", lastConfig->logPath.c_str());
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
    // The last agent started, even once stopped: what it queued still goes out.
    Agent* current = agent ? agent : (retiredAgents.empty() ? nullptr : retiredAgents.back());
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
    {"after_fork_in_child", afterForkInChild, METH_NOARGS, "Gives a forked child its own agent."},
    {"running", isRunning, METH_NOARGS, "Whether the agent runs."},
    {"state_path", statePath, METH_NOARGS, "The agent's shared-memory state file, or None."},
    {"settings", settings, METH_NOARGS, "What the Python side needs of the configuration."},
    {"next_txn", nextTxn, METH_NOARGS, "A new transaction id."},
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
    if (!readyRequestType()) return nullptr;
    PyObject* module = PyModule_Create(&moduleDef);
    if (!module) return nullptr;
    transactionVar = PyContextVar_New("vigil_request", nullptr);
    configError = PyErr_NewExceptionWithDoc("vigil.ConfigError",
                                            "The agent's configuration is wrong: the message "
                                            "names the file or variable, the key and why.",
                                            PyExc_ValueError, nullptr);
    Py_INCREF(&RequestType);
    if (!transactionVar || !configError ||
        PyModule_AddObject(module, "request", reinterpret_cast<PyObject*>(&RequestType)) < 0 ||
        PyModule_AddObject(module, "ConfigError", configError) < 0) {
        Py_DECREF(module);
        return nullptr;
    }
    Py_INCREF(configError);  // AddObject stole one; the module keeps using it
    return module;
}
