// vigil._vigil.WSGIMiddleware: the per-request path of vigil.WSGIMiddleware
// (python/vigil/middleware.py, whose public class is a thin subclass of this
// type), in C: no Python frame per request when name and user are the
// defaults. Its behaviour is the one documented there:
//
// - the request is named "METHOD PATH" (SCRIPT_NAME + PATH_INFO, non-ASCII
//   paths re-decoded from latin-1 to UTF-8), its user is REMOTE_USER (empty:
//   None), or what the name(environ) and user(environ) given return;
// - environ["vigil.txn"] is set, then the request begins, then the
//   application is called with the response object as its start_response;
// - the response object notes the status and adds the transaction header to
//   a copy of the headers; the server iterates it (straight to the
//   application's iterable) and closes it: the request ends there;
// - an Exception from the application goes to vigil.middleware._wsgi_crash
//   (Python: the crash page), a BaseException ends the request and goes on.
//
// The rare paths stay in Python: an environ that is not a dict or whose
// values are not str gets vigil.middleware's _wsgi_name and _wsgi_user.
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "agent/runtime.h"
// After Python.h, which runtime.h includes.
#include <structmember.h>

namespace vigil::agent {
namespace {

// --- What differs between the CPython versions (3.8 to 3.13) -----------------------

#if PY_VERSION_HEX >= 0x03090000
constexpr unsigned long kHaveVectorcall = Py_TPFLAGS_HAVE_VECTORCALL;
#else
constexpr unsigned long kHaveVectorcall = _Py_TPFLAGS_HAVE_VECTORCALL;
#endif

PyObject* vectorcall(PyObject* callable, PyObject* const* args, size_t nargsf) {
#if PY_VERSION_HEX >= 0x03090000
    return PyObject_Vectorcall(callable, args, nargsf, nullptr);
#else
    return _PyObject_Vectorcall(callable, args, nargsf, nullptr);
#endif
}

// callable(argument), letting a bound method put its self in front of it.
PyObject* callOne(PyObject* callable, PyObject* argument) {
    PyObject* args[2] = {nullptr, argument};
    return vectorcall(callable, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET);
}

// getattr(object, name, None) without the AttributeError: 1 found (a new
// reference in *value), 0 missing, -1 another error.
int lookupAttribute(PyObject* object, PyObject* name, PyObject** value) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(object, name, value);
#else
    return _PyObject_LookupAttr(object, name, value);
#endif
}

bool readyText(PyObject* text) {
#if PY_VERSION_HEX >= 0x030C0000
    (void)text;
    return true;  // every str is ready
#else
    return PyUnicode_READY(text) == 0;
#endif
}

// The exception being raised, taken as an except clause takes it:
// normalized, its __traceback__ set. New references.
struct Caught {
    PyObject* type = nullptr;
    PyObject* value = nullptr;
    PyObject* traceback = nullptr;  // or null

    static Caught take() {
        Caught caught;
#if PY_VERSION_HEX >= 0x030C0000
        caught.value = PyErr_GetRaisedException();
        caught.type = reinterpret_cast<PyObject*>(Py_TYPE(caught.value));
        Py_INCREF(caught.type);
        caught.traceback = PyException_GetTraceback(caught.value);
#else
        PyErr_Fetch(&caught.type, &caught.value, &caught.traceback);
        PyErr_NormalizeException(&caught.type, &caught.value, &caught.traceback);
        if (caught.traceback) PyException_SetTraceback(caught.value, caught.traceback);
#endif
        return caught;
    }

    // Raises it again (a `raise` at the end of the except clause).
    void raise() {
#if PY_VERSION_HEX >= 0x030C0000
        Py_DECREF(type);
        Py_XDECREF(traceback);
        PyErr_SetRaisedException(value);
#else
        PyErr_Restore(type, value, traceback);
#endif
        type = value = traceback = nullptr;
    }

    void drop() {
        Py_CLEAR(type);
        Py_CLEAR(value);
        Py_CLEAR(traceback);
    }
};

// While it lives, the caught exception is the one being handled
// (sys.exc_info()), as inside an except or finally clause: what the Python
// code called there sees, and what a new exception gets as its __context__.
class Handling {
  public:
    explicit Handling(const Caught& caught) {
#if PY_VERSION_HEX >= 0x030B0000
        previous_ = PyErr_GetHandledException();
        PyErr_SetHandledException(caught.value);
#else
        PyErr_GetExcInfo(&previousType_, &previous_, &previousTraceback_);
        Py_INCREF(caught.type);
        Py_INCREF(caught.value);
        Py_XINCREF(caught.traceback);
        PyErr_SetExcInfo(caught.type, caught.value, caught.traceback);
#endif
    }
    ~Handling() {
#if PY_VERSION_HEX >= 0x030B0000
        PyErr_SetHandledException(previous_);
        Py_XDECREF(previous_);
#else
        PyErr_SetExcInfo(previousType_, previous_, previousTraceback_);
#endif
    }
    Handling(const Handling&) = delete;
    Handling& operator=(const Handling&) = delete;

  private:
    PyObject* previous_ = nullptr;
#if PY_VERSION_HEX < 0x030B0000
    PyObject* previousType_ = nullptr;
    PyObject* previousTraceback_ = nullptr;
#endif
};

// --- Names, made once ----------------------------------------------------------------

struct Names {
    PyObject* scriptName;
    PyObject* pathInfo;
    PyObject* requestMethod;
    PyObject* remoteUser;
    PyObject* vigilTxn;
    PyObject* close;
    PyObject* status;
    PyObject* headers;
    PyObject* excInfo;
    PyObject* empty;          // ""
    PyObject* get;            // "GET"
    PyObject* defaultHeader;  // vigil.middleware.DEFAULT_HEADER
    PyObject* noResult;       // (): the response's iterable before the application returned
    PyObject* firstThree;     // slice(None, 3)
};
Names names;

bool makeNames() {
    struct {
        PyObject** slot;
        const char* text;
    } texts[] = {
        {&names.scriptName, "SCRIPT_NAME"},
        {&names.pathInfo, "PATH_INFO"},
        {&names.requestMethod, "REQUEST_METHOD"},
        {&names.remoteUser, "REMOTE_USER"},
        {&names.vigilTxn, "vigil.txn"},
        {&names.close, "close"},
        {&names.status, "status"},
        {&names.headers, "headers"},
        {&names.excInfo, "exc_info"},
        {&names.empty, ""},
        {&names.get, "GET"},
        {&names.defaultHeader, "X-Vigil-Transaction"},
    };
    for (auto& [slot, text] : texts)
        if (!(*slot = PyUnicode_InternFromString(text))) return false;
    names.noResult = PyTuple_New(0);
    PyObject* three = PyLong_FromLong(3);
    names.firstThree = three ? PySlice_New(nullptr, three, nullptr) : nullptr;
    Py_XDECREF(three);
    return names.noResult && names.firstThree;
}

// The rare paths' functions of vigil.middleware, imported at first use
// (vigil._vigil is imported by the vigil package, before vigil.middleware).
enum Helper { kName, kUser, kCrash, kHelpers };
PyObject* helpers[kHelpers];

PyObject* helper(Helper which) {  // borrowed, or null with an exception set
    static const char* const helperNames[kHelpers] = {"_wsgi_name", "_wsgi_user", "_wsgi_crash"};
    if (helpers[which]) return helpers[which];
    PyObject* module = PyImport_ImportModule("vigil.middleware");
    if (!module) return nullptr;
    helpers[which] = PyObject_GetAttrString(module, helperNames[which]);
    Py_DECREF(module);
    return helpers[which];
}

PyObject* callHelper(Helper which, PyObject* argument) {
    PyObject* function = helper(which);
    return function ? callOne(function, argument) : nullptr;
}

// --- The response ----------------------------------------------------------------------

// The application's response, handed to the server in its place. One object
// per request plays both parts the middleware needs: called, it is the
// start_response given to the application; iterated and closed, it is the
// response iterable given to the server.
struct ResponseObject {
    PyObject ob_base;  // PyObject_HEAD, spelled so that formatters read it
    vectorcallfunc vectorcall;
    PyObject* request;        // the running vigil.request; null once ended
    PyObject* startResponse;  // the server's
    PyObject* header;         // (name, txn), or null for no header
    PyObject* result;         // the application's iterable; null until it returned
};

PyTypeObject ResponseType = {PyVarObject_HEAD_INIT(nullptr, 0)};

ResponseObject* asResponse(PyObject* object) {
    return reinterpret_cast<ResponseObject*>(object);
}

// Ends the request, once, and lets go of it: an exception a framework
// recorded on the request holds frames that hold this object (see end() in
// Python). No exception may be set (the crash record runs Python code).
void endResponse(ResponseObject* self, PyObject* exception) {
    PyObject* request = self->request;
    if (!request) return;
    self->request = nullptr;
    endRequest(request, exception);
    Py_DECREF(request);
}

// int(status[:3]), or 0 when that is not a number (ValueError): the server
// will say so.
bool statusCode(PyObject* status, int* code) {
    if (PyUnicode_CheckExact(status) && readyText(status) && PyUnicode_GET_LENGTH(status) >= 3) {
        int kind = PyUnicode_KIND(status);
        const void* data = PyUnicode_DATA(status);
        int value = 0;
        bool digits = true;
        for (Py_ssize_t index = 0; index < 3 && digits; ++index) {
            Py_UCS4 c = PyUnicode_READ(kind, data, index);
            digits = c >= '0' && c <= '9';
            value = value * 10 + static_cast<int>(c - '0');
        }
        if (digits) {
            *code = value;
            return true;
        }
    }
    // Anything else as Python has it: int() strips blanks, takes signs and
    // underscores, and bytes.
    PyObject* head = PyObject_GetItem(status, names.firstThree);
    PyObject* number = head ? PyNumber_Long(head) : nullptr;
    Py_XDECREF(head);
    if (!number) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return false;
        PyErr_Clear();
        *code = 0;
        return true;
    }
    long value = PyLong_AsLong(number);
    Py_DECREF(number);
    if (value == -1 && PyErr_Occurred()) return false;
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "the status does not fit in an int");
        return false;
    }
    *code = static_cast<int>(value);
    return true;
}

// The start_response the application calls: notes the status, adds the
// header to a copy of the headers (an application may pass the same list to
// every request), and calls the server's.
PyObject* startResponse(ResponseObject* self, PyObject* status, PyObject* headers,
                        PyObject* excInfo) {
    int code = 0;
    if (!statusCode(status, &code)) return nullptr;
    if (!self->request) {  // called after the end, as Python would say it
        PyErr_SetString(PyExc_AttributeError, "'NoneType' object has no attribute 'status'");
        return nullptr;
    }
    setRequestStatus(self->request, code);
    PyObject* sent;
    if (!self->header) {
        Py_INCREF(headers);
        sent = headers;
    } else if (PyList_CheckExact(headers)) {
        Py_ssize_t size = PyList_GET_SIZE(headers);
        if (!(sent = PyList_New(size + 1))) return nullptr;
        for (Py_ssize_t index = 0; index < size; ++index) {
            PyObject* item = PyList_GET_ITEM(headers, index);
            Py_INCREF(item);
            PyList_SET_ITEM(sent, index, item);
        }
        Py_INCREF(self->header);
        PyList_SET_ITEM(sent, size, self->header);
    } else {
        if (!(sent = PySequence_List(headers))) return nullptr;
        if (PyList_Append(sent, self->header) < 0) {
            Py_DECREF(sent);
            return nullptr;
        }
    }
    PyObject* server = self->startResponse;
    Py_INCREF(server);
    PyObject* args[4] = {nullptr, status, sent, excInfo};
    PyObject* result = vectorcall(server, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET);
    Py_DECREF(server);
    Py_DECREF(sent);
    return result;
}

// start_response(status, headers, exc_info=None), by position or keyword.
PyObject* responseVectorcall(PyObject* object, PyObject* const* args, size_t nargsf,
                             PyObject* kwnames) {
    Py_ssize_t count = PyVectorcall_NARGS(nargsf);
    PyObject* given[3] = {nullptr, nullptr, nullptr};
    if (count > 3) {
        PyErr_Format(PyExc_TypeError,
                     "start_response() takes from 2 to 3 positional arguments but %zd were given",
                     count);
        return nullptr;
    }
    for (Py_ssize_t index = 0; index < count; ++index) given[index] = args[index];
    Py_ssize_t keywords = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t index = 0; index < keywords; ++index) {
        PyObject* keyword = PyTuple_GET_ITEM(kwnames, index);
        int position = -1;
        for (int candidate = 0; candidate < 3 && position < 0; ++candidate) {
            PyObject* name = candidate == 0   ? names.status
                             : candidate == 1 ? names.headers
                                              : names.excInfo;
            int equal = PyObject_RichCompareBool(keyword, name, Py_EQ);
            if (equal < 0) return nullptr;
            if (equal) position = candidate;
        }
        if (position < 0) {
            PyErr_Format(PyExc_TypeError,
                         "start_response() got an unexpected keyword argument '%S'", keyword);
            return nullptr;
        }
        if (given[position]) {
            PyErr_Format(PyExc_TypeError, "start_response() got multiple values for argument '%S'",
                         keyword);
            return nullptr;
        }
        given[position] = args[count + index];
    }
    if (!given[0] || !given[1]) {
        PyErr_SetString(PyExc_TypeError,
                        "start_response() missing a required argument: 'status' or 'headers'");
        return nullptr;
    }
    return startResponse(asResponse(object), given[0], given[1], given[2] ? given[2] : Py_None);
}

// Iteration goes straight to the application's iterable.
PyObject* responseIter(PyObject* object) {
    ResponseObject* self = asResponse(object);
    return PyObject_GetIter(self->result ? self->result : names.noResult);
}

// close(): the application's iterable's close, if it has one (PEP 3333),
// then, whatever it did, the end of the request.
PyObject* responseClose(PyObject* object, PyObject*) {
    ResponseObject* self = asResponse(object);
    PyObject* result = self->result;
    bool failed = false;
    // A list or tuple (the common body) has no close.
    if (result && !PyList_CheckExact(result) && !PyTuple_CheckExact(result)) {
        Py_INCREF(result);
        PyObject* close = nullptr;
        int found = lookupAttribute(result, names.close, &close);
        if (found > 0 && close != Py_None) {
            PyObject* closed = vectorcall(close, nullptr, 0);
            failed = !closed;
            Py_XDECREF(closed);
        }
        failed = failed || found < 0;
        Py_XDECREF(close);
        Py_DECREF(result);
    }
    if (failed) {  // finally: the request ends, and the exception goes on
        Caught caught = Caught::take();
        {
            Handling handling(caught);
            endResponse(self, nullptr);
        }
        caught.raise();
        return nullptr;
    }
    endResponse(self, nullptr);
    Py_RETURN_NONE;
}

// end(kind=None, error=None, traceback=None): ends the request with the
// exception (kept with it), once; for vigil.middleware._wsgi_crash.
PyObject* responseEnd(PyObject* object, PyObject* args) {
    PyObject *kind = Py_None, *error = Py_None, *traceback = Py_None;
    if (!PyArg_UnpackTuple(args, "end", 0, 3, &kind, &error, &traceback)) return nullptr;
    endResponse(asResponse(object), error);
    Py_RETURN_NONE;
}

PyObject* getResponseRequest(PyObject* object, void*) {
    PyObject* request = asResponse(object)->request;
    if (!request) Py_RETURN_NONE;
    Py_INCREF(request);
    return request;
}

int responseTraverse(PyObject* object, visitproc visit, void* arg) {
    ResponseObject* self = asResponse(object);
    Py_VISIT(self->request);
    Py_VISIT(self->startResponse);
    Py_VISIT(self->header);
    Py_VISIT(self->result);
    return 0;
}

int responseClear(PyObject* object) {
    ResponseObject* self = asResponse(object);
    Py_CLEAR(self->request);
    Py_CLEAR(self->startResponse);
    Py_CLEAR(self->header);
    Py_CLEAR(self->result);
    return 0;
}

void responseDealloc(PyObject* object) {
    PyObject_GC_UnTrack(object);
    // A request never closed ends with its object (request_object.cpp).
    responseClear(object);
    PyObject_GC_Del(object);
}

PyMethodDef responseMethods[] = {
    {"close", responseClose, METH_NOARGS,
     "Closes the application's iterable, if it can be, and ends the request (PEP 3333)."},
    {"end", responseEnd, METH_VARARGS,
     "end(kind=None, error=None, traceback=None): ends the request, once, and lets go of it."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef responseGetters[] = {
    {"request", getResponseRequest, nullptr, "The vigil.request, or None once it ended.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// --- The middleware ----------------------------------------------------------------------

struct MiddlewareObject {
    PyObject ob_base;
    PyObject* app;
    PyObject* name;    // name(environ), or null for "METHOD PATH"
    PyObject* user;    // user(environ), or null for REMOTE_USER
    PyObject* header;  // the agent's header name ("" for none), or null until it ran
};

MiddlewareObject* asMiddleware(PyObject* object) {
    return reinterpret_cast<MiddlewareObject*>(object);
}

// environ[key] as a new reference, or fallback (borrowed) when missing.
PyObject* lookup(PyObject* environ, PyObject* key, PyObject* fallback) {
    PyObject* value = PyDict_GetItemWithError(environ, key);
    if (!value) {
        if (PyErr_Occurred()) return nullptr;
        value = fallback;
    }
    Py_INCREF(value);
    return value;
}

// method + " " + first + second, in one allocation.
PyObject* joinName(PyObject* method, PyObject* first, PyObject* second) {
    PyObject* parts[] = {method, nullptr, first, second};
    Py_ssize_t length = 1;
    Py_UCS4 widest = 127;
    for (PyObject* part : parts) {
        if (!part) continue;
        length += PyUnicode_GET_LENGTH(part);
        widest = std::max<Py_UCS4>(widest, PyUnicode_MAX_CHAR_VALUE(part));
    }
    PyObject* name = PyUnicode_New(length, widest);
    if (!name) return nullptr;
    Py_ssize_t at = 0;
    for (PyObject* part : parts) {
        if (!part) {
            PyUnicode_WRITE(PyUnicode_KIND(name), PyUnicode_DATA(name), at, ' ');
            ++at;
            continue;
        }
        Py_ssize_t size = PyUnicode_GET_LENGTH(part);
        if (widest == 127) {
            memcpy(PyUnicode_1BYTE_DATA(name) + at, PyUnicode_1BYTE_DATA(part),
                   static_cast<size_t>(size));
        } else if (PyUnicode_CopyCharacters(name, at, part, 0, size) < 0) {
            Py_DECREF(name);
            return nullptr;
        }
        at += size;
    }
    return name;
}

// "METHOD PATH": _wsgi_name, for an environ that is a dict of str.
PyObject* defaultName(PyObject* environ) {
    if (!PyDict_CheckExact(environ)) return callHelper(kName, environ);
    PyObject* script = lookup(environ, names.scriptName, names.empty);
    PyObject* path = script ? lookup(environ, names.pathInfo, names.empty) : nullptr;
    PyObject* method = path ? lookup(environ, names.requestMethod, names.get) : nullptr;
    PyObject* name = nullptr;
    if (!method) {
        // An error in a lookup: it stays set.
    } else if (!PyUnicode_CheckExact(script) || !PyUnicode_CheckExact(path) ||
               !PyUnicode_CheckExact(method) || !readyText(script) || !readyText(path) ||
               !readyText(method)) {
        if (!PyErr_Occurred()) name = callHelper(kName, environ);
    } else if (PyUnicode_IS_ASCII(script) && PyUnicode_IS_ASCII(path)) {
        name = joinName(method, script, path);
    } else {
        // PEP 3333 hands the path over as bytes decoded as latin-1; the name
        // is for people: non-ASCII paths are shown as the UTF-8 the client sent.
        PyObject* whole = PyUnicode_Concat(script, path);
        PyObject* bytes = whole ? PyUnicode_AsLatin1String(whole) : nullptr;
        PyObject* text = bytes ? PyUnicode_DecodeUTF8(PyBytes_AS_STRING(bytes),
                                                      PyBytes_GET_SIZE(bytes), "replace")
                               : nullptr;
        if (text && readyText(text)) name = joinName(method, text, names.empty);
        Py_XDECREF(whole);
        Py_XDECREF(bytes);
        Py_XDECREF(text);
    }
    Py_XDECREF(script);
    Py_XDECREF(path);
    Py_XDECREF(method);
    return name;
}

// REMOTE_USER, None when missing or empty: _wsgi_user.
PyObject* defaultUser(PyObject* environ) {
    if (!PyDict_CheckExact(environ)) return callHelper(kUser, environ);
    PyObject* user = lookup(environ, names.remoteUser, Py_None);
    if (!user) return nullptr;
    int truth = PyUnicode_CheckExact(user) ? PyUnicode_GET_LENGTH(user) > 0 : PyObject_IsTrue(user);
    if (truth > 0) return user;
    Py_DECREF(user);
    if (truth < 0) return nullptr;
    Py_RETURN_NONE;
}

// The response header's name: the agent's [requests] header, read at the
// first request after the agent started and kept; before, the default, and
// the agent asked again next time (_HeaderName). Borrowed.
PyObject* headerName(MiddlewareObject* self) {
    if (!self->header) {
        Agent* agent = lastStartedAgent();
        if (!agent) return names.defaultHeader;
        const std::string& text = agent->config().header;
        self->header =
            PyUnicode_FromStringAndSize(text.data(), static_cast<Py_ssize_t>(text.size()));
    }
    return self->header;
}

// The response object of a new request, not begun yet.
ResponseObject* newResponse(MiddlewareObject* self, PyObject* environ, PyObject* start) {
    PyObject* name = self->name ? callOne(self->name, environ) : defaultName(environ);
    if (!name) return nullptr;
    PyObject* user = self->user ? callOne(self->user, environ) : defaultUser(environ);
    PyObject* request = nullptr;
    if (user) {
        // Anything but a str gets vigil.request's own TypeError.
        request = PyUnicode_Check(name)
                      ? newRequest(name, user)
                      : PyObject_CallFunctionObjArgs(reinterpret_cast<PyObject*>(&RequestType),
                                                     name, user, nullptr);
    }
    Py_DECREF(name);
    Py_XDECREF(user);
    if (!request) return nullptr;
    // (header name, txn) if the name is not empty, else no header.
    PyObject* header = headerName(self);
    PyObject* pair = nullptr;
    bool made = header != nullptr;
    if (made && PyUnicode_GET_LENGTH(header) > 0) {
        PyObject* txn = requestTxn(request);
        pair = txn ? PyTuple_Pack(2, header, txn) : nullptr;
        Py_XDECREF(txn);
        made = pair != nullptr;
    }
    if (!made) {
        Py_DECREF(request);
        return nullptr;
    }
    ResponseObject* response = PyObject_GC_New(ResponseObject, &ResponseType);
    if (!response) {
        Py_DECREF(request);
        Py_XDECREF(pair);
        return nullptr;
    }
    response->vectorcall = responseVectorcall;
    response->request = request;
    Py_INCREF(start);
    response->startResponse = start;
    response->header = pair;
    response->result = nullptr;
    PyObject_GC_Track(response);
    return response;
}

// The application raised an Exception: vigil.middleware._wsgi_crash ends the
// request with it and returns the crash page, in the exception's except
// clause as it were.
PyObject* crashed(ResponseObject* response, PyObject* environ) {
    Caught caught = Caught::take();
    PyObject* page = nullptr;
    {
        Handling handling(caught);
        PyObject* crash = helper(kCrash);
        PyObject* excInfo = crash ? PyTuple_Pack(3, caught.type, caught.value,
                                                 caught.traceback ? caught.traceback : Py_None)
                                  : nullptr;
        if (excInfo) {
            PyObject* args[4] = {nullptr, reinterpret_cast<PyObject*>(response), excInfo, environ};
            page = vectorcall(crash, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET);
            Py_DECREF(excInfo);
        } else {  // no crash page to give: the request still ends, with the exception
            Caught failure = Caught::take();
            endResponse(response, caught.value);
            failure.raise();
        }
    }
    caught.drop();
    return page;
}

PyObject* middlewareCall(PyObject* object, PyObject* args, PyObject* kwargs) {
    MiddlewareObject* self = asMiddleware(object);
    PyObject *environ, *start;
    if (!kwargs && PyTuple_GET_SIZE(args) == 2) {
        environ = PyTuple_GET_ITEM(args, 0);
        start = PyTuple_GET_ITEM(args, 1);
    } else {
        static const char* keywords[] = {"environ", "start_response", nullptr};
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:__call__", const_cast<char**>(keywords),
                                         &environ, &start))
            return nullptr;
    }
    PyObject* app = self->app;
    if (!app) {
        PyErr_SetString(PyExc_AttributeError, "WSGIMiddleware has no app");
        return nullptr;
    }
    Py_INCREF(app);
    ResponseObject* response = newResponse(self, environ, start);
    PyObject* txn = response ? requestTxn(response->request) : nullptr;
    // Set up before the request begins: nothing can fail between its begin
    // and the code that guarantees its end.
    int stored = -1;
    if (txn) {
        stored = PyDict_CheckExact(environ) ? PyDict_SetItem(environ, names.vigilTxn, txn)
                                            : PyObject_SetItem(environ, names.vigilTxn, txn);
        Py_DECREF(txn);
    }
    if (stored < 0 || !beginRequest(response->request)) {
        Py_XDECREF(response);
        Py_DECREF(app);
        return nullptr;
    }
    PyObject* callArgs[3] = {nullptr, environ, reinterpret_cast<PyObject*>(response)};
    PyObject* result = vectorcall(app, callArgs + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET);
    Py_DECREF(app);
    if (result) {
        response->result = result;
        return reinterpret_cast<PyObject*>(response);
    }
    PyObject* page = nullptr;
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        page = crashed(response, environ);
    } else {  // the process is leaving: no page to answer
        Caught caught = Caught::take();
        {
            Handling handling(caught);
            endResponse(response, caught.value);
        }
        caught.raise();
    }
    Py_DECREF(response);
    return page;
}

int middlewareInit(PyObject* object, PyObject* args, PyObject* kwargs) {
    MiddlewareObject* self = asMiddleware(object);
    static const char* keywords[] = {"app", "name", "user", nullptr};
    PyObject *app, *name = Py_None, *user = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:WSGIMiddleware",
                                     const_cast<char**>(keywords), &app, &name, &user))
        return -1;
    // name or the default, user or the default, as Python's `or` has it.
    int customName = name == Py_None ? 0 : PyObject_IsTrue(name);
    int customUser = customName < 0 || user == Py_None ? 0 : PyObject_IsTrue(user);
    if (customName < 0 || customUser < 0) return -1;
    Py_INCREF(app);
    Py_XSETREF(self->app, app);
    PyObject* nameFunction = customName ? name : nullptr;
    PyObject* userFunction = customUser ? user : nullptr;
    Py_XINCREF(nameFunction);
    Py_XSETREF(self->name, nameFunction);
    Py_XINCREF(userFunction);
    Py_XSETREF(self->user, userFunction);
    return 0;
}

int middlewareTraverse(PyObject* object, visitproc visit, void* arg) {
    MiddlewareObject* self = asMiddleware(object);
    Py_VISIT(self->app);
    Py_VISIT(self->name);
    Py_VISIT(self->user);
    return 0;
}

int middlewareClear(PyObject* object) {
    MiddlewareObject* self = asMiddleware(object);
    Py_CLEAR(self->app);
    Py_CLEAR(self->name);
    Py_CLEAR(self->user);
    Py_CLEAR(self->header);
    return 0;
}

void middlewareDealloc(PyObject* object) {
    PyObject_GC_UnTrack(object);
    middlewareClear(object);
    Py_TYPE(object)->tp_free(object);
}

PyMemberDef middlewareMembers[] = {
    {"app", T_OBJECT_EX, offsetof(MiddlewareObject, app), 0, "The WSGI application."},
    {nullptr, 0, 0, 0, nullptr},
};

}  // namespace

PyTypeObject WsgiMiddlewareType = {PyVarObject_HEAD_INIT(nullptr, 0)};

bool readyWsgiTypes() {
    if (!makeNames()) return false;
    ResponseType.tp_name = "vigil._vigil.WSGIResponse";
    ResponseType.tp_basicsize = sizeof(ResponseObject);
    ResponseType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | kHaveVectorcall;
    ResponseType.tp_doc =
        "A WSGI application's response under vigil.WSGIMiddleware: its start_response when "
        "called, its iterable when iterated and closed.";
    ResponseType.tp_vectorcall_offset = offsetof(ResponseObject, vectorcall);
    ResponseType.tp_call = PyVectorcall_Call;
    ResponseType.tp_iter = responseIter;
    ResponseType.tp_traverse = responseTraverse;
    ResponseType.tp_clear = responseClear;
    ResponseType.tp_dealloc = responseDealloc;
    ResponseType.tp_methods = responseMethods;
    ResponseType.tp_getset = responseGetters;

    WsgiMiddlewareType.tp_name = "vigil._vigil.WSGIMiddleware";
    WsgiMiddlewareType.tp_basicsize = sizeof(MiddlewareObject);
    WsgiMiddlewareType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE;
    WsgiMiddlewareType.tp_doc =
        "WSGIMiddleware(app, name=None, user=None)\n--\n\n"
        "The per-request path of vigil.WSGIMiddleware, which documents it.";
    WsgiMiddlewareType.tp_new = PyType_GenericNew;
    WsgiMiddlewareType.tp_init = middlewareInit;
    WsgiMiddlewareType.tp_call = middlewareCall;
    WsgiMiddlewareType.tp_traverse = middlewareTraverse;
    WsgiMiddlewareType.tp_clear = middlewareClear;
    WsgiMiddlewareType.tp_dealloc = middlewareDealloc;
    WsgiMiddlewareType.tp_members = middlewareMembers;
    return PyType_Ready(&ResponseType) == 0 && PyType_Ready(&WsgiMiddlewareType) == 0;
}

}  // namespace vigil::agent
