// What the extension's functions and its Request type share: the running
// agent, the transaction id source and the context variable holding the
// current request. All of it is used with the GIL held.
#pragma once
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "agent/agent.h"
#include "core/txn_id.h"

namespace vigil::agent {

// The agent of this process, or null when none was started (requests still
// get transaction ids then, they are just not tracked).
Agent* currentAgent();
// Shared by every process of this user on the host: ids never collide.
TxnIdSource& txnIds();
// A contextvars.ContextVar holding the current Request object: per thread
// and per asyncio task.
PyObject* transactionVariable();

// The running agent, else the last one started (stopped, or the parent's in
// a forked child); null before any start.
Agent* lastStartedAgent();

// The Request type (request_object.cpp); ready once the module is created.
extern PyTypeObject RequestType;
bool readyRequestType();

// vigil.request(name, user) (name a str), __enter__, __exit__, .txn and
// .status = for C callers (the WSGI middleware), without Python-level calls.
// newRequest and requestTxn return new references, or null with an
// exception set; beginRequest is false with an exception set; endRequest
// (a no-op unless the request runs) may run Python code (a crash record):
// no exception may be set when it is called.
PyObject* newRequest(PyObject* name, PyObject* user);
bool beginRequest(PyObject* request);
void endRequest(PyObject* request, PyObject* exception);
PyObject* requestTxn(PyObject* request);
void setRequestStatus(PyObject* request, int status);

// vigil._vigil.WSGIMiddleware (wsgi_middleware.cpp) and its response type.
extern PyTypeObject WsgiMiddlewareType;
bool readyWsgiTypes();

}  // namespace vigil::agent
