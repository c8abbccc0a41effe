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

// The Request type (request_object.cpp); ready once the module is created.
extern PyTypeObject RequestType;
bool readyRequestType();

}  // namespace vigil::agent
