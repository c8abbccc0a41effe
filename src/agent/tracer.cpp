// The execution recorder: records the execution of selected code, line by
// line, in every thread, into a trace (src/trace/trace_writer.h).
//
// How, per version:
// - 3.12+: sys.monitoring (PEP 669) with callbacks written in C. Globally
//   only PY_START, PY_RESUME, PY_THROW, PY_UNWIND and RAISE: a start or
//   resume of code outside the selection returns DISABLE, so it costs one
//   callback per code location, once. Selected code gets LINE, JUMP,
//   PY_RETURN, PY_YIELD and STOP_ITERATION as local events
//   (set_local_events), so those callbacks never ask whether to record.
// - 3.8-3.11: a C trace function (Py_tracefunc) in every thread: those
//   running at the start, and each new threading.Thread through
//   threading.settrace. A frame of code outside the selection gets
//   f_trace_lines = 0 at its call event: it then costs its call and return
//   events only.
// Both make the same events sys.settrace would (tests/targets/
// trace_program.py says which), so a recording replays as settrace saw it.
//
// Whether a code object is selected is decided at its first sight and kept
// in its co_extra slot (a CodeInfo): one lookup per call event.
//
// A thread's events go to its Recorder, which appends them to the thread's
// ThreadTrace (no lock, no system call: the writer's thread compresses and
// writes), and keeps the stack of the selected frames it entered, the task
// they run in, and the precise flag. The thread state owns it (3.8-3.11:
// the trace function's argument; 3.12+: the thread's dict), so a thread
// that ends ends its ThreadTrace.
//
// asyncio: a task runs a coroutine with send() from the event loop, so the
// task of a frame is identified by the outermost coroutine of the chain of
// coroutines awaiting each other around it (its address). A call or resume
// of a selected coroutine looks that chain up (a walk up the few awaiting
// frames); other selected code takes the task of the selected frame it was
// called from, or, entered from unselected code once the program has run
// any coroutine, walks up to its nearest coroutine. A change of task is a
// kTaskSwitch event.
#include "agent/tracer.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

#include <frameobject.h>

#include "core/errors.h"
#include "trace/trace_reader.h"
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#endif

namespace vigil::agent {

bool TraceSelection::addPath(std::string_view glob, std::string& problem) {
    auto compiled = Glob::compile(glob, problem);
    if (!compiled) return false;
    paths_.push_back(std::move(*compiled));
    return true;
}

bool TraceSelection::matches(std::string_view module, std::string_view file) const {
    for (const std::string& package : packages_) {
        if (module.size() >= package.size() && module.compare(0, package.size(), package) == 0 &&
            (module.size() == package.size() || module[package.size()] == '.'))
            return true;
    }
    for (const Glob& path : paths_) {
        if (path.matches(file)) return true;
    }
    return false;
}

namespace {

constexpr int kCoroutineFlags = CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR;
// Instruction offsets whose line a code object remembers (3.12+): a few
// resume points and loops; beyond that, each is looked up again.
constexpr size_t kCachedLines = 16;

std::string_view utf8(PyObject* text) {
    Py_ssize_t size = 0;
    const char* data =
        text && PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &size) : nullptr;
    if (!data) {
        PyErr_Clear();
        return {};
    }
    return {data, static_cast<size_t>(size)};
}

// --- Frames, per version ------------------------------------------------------

// The code a frame runs; borrowed (the frame holds it).
PyCodeObject* codeOf(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
    PyCodeObject* code = PyFrame_GetCode(frame);
    Py_DECREF(code);
    return code;
#else
    return frame->f_code;
#endif
}

// The frame's globals; borrowed.
PyObject* globalsOf(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
    PyObject* globals = PyFrame_GetGlobals(frame);
    Py_XDECREF(globals);
    return globals;
#else
    return frame->f_globals;
#endif
}

// A new reference to the frame's caller, or null.
PyFrameObject* callerOf(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x03090000
    return PyFrame_GetBack(frame);
#else
    Py_XINCREF(frame->f_back);
    return frame->f_back;
#endif
}

// The address of the generator or coroutine a frame belongs to, or 0.
uint64_t generatorOf(PyFrameObject* frame) {
#if PY_VERSION_HEX >= 0x030B0000
    PyObject* generator = PyFrame_GetGenerator(frame);
    Py_XDECREF(generator);  // alive: its frame runs
    return reinterpret_cast<uint64_t>(generator);
#else
    return reinterpret_cast<uint64_t>(frame->f_gen);
#endif
}

// A new reference to the innermost frame of a thread, or null.
PyFrameObject* innermostFrame(PyThreadState* thread) {
#if PY_VERSION_HEX >= 0x03090000
    return PyThreadState_GetFrame(thread);
#else
    Py_XINCREF(thread->frame);
    return thread->frame;
#endif
}

PyInterpreterState* thisInterpreter() {
#if PY_VERSION_HEX >= 0x03090000
    return PyInterpreterState_Get();
#else
    return PyThreadState_Get()->interp;
#endif
}

// The task of a frame (see the top of the file): the outermost coroutine of
// the first chain of awaiting coroutines found going out from the frame.
uint64_t taskOf(PyFrameObject* frame) {
    uint64_t root = 0;
    Py_XINCREF(frame);
    while (frame) {
        bool coroutine = (codeOf(frame)->co_flags & kCoroutineFlags) != 0;
        if (coroutine) root = generatorOf(frame);
        PyFrameObject* caller = (coroutine || !root) ? callerOf(frame) : nullptr;
        Py_DECREF(frame);
        frame = caller;
    }
    return root;
}

// --- The decision cache ---------------------------------------------------------

// What the recorder knows of a code object, in its co_extra slot; freed
// with the code object. A recording decides again what an earlier one did.
struct CodeInfo {
    uint64_t session = 0;
    uint32_t id = 0;  // the writer's, when selected
    bool selected = false;
    bool coroutine = false;
    std::vector<std::pair<int, int>> lines;  // instruction offset -> line (3.12+)
};

Py_ssize_t codeExtraIndex = -1;

void freeCodeInfo(void* info) {
    delete static_cast<CodeInfo*>(info);
}

bool requestCodeExtraIndex() {
    if (codeExtraIndex >= 0) return true;
#if PY_VERSION_HEX >= 0x030C0000
    codeExtraIndex = PyUnstable_Eval_RequestCodeExtraIndex(freeCodeInfo);
#else
    codeExtraIndex = _PyEval_RequestCodeExtraIndex(freeCodeInfo);
#endif
    if (codeExtraIndex < 0) PyErr_SetString(PyExc_RuntimeError, "no co_extra slot left");
    return codeExtraIndex >= 0;
}

CodeInfo* cachedInfo(PyCodeObject* code) {
    void* extra = nullptr;
#if PY_VERSION_HEX >= 0x030C0000
    PyUnstable_Code_GetExtra(reinterpret_cast<PyObject*>(code), codeExtraIndex, &extra);
#else
    _PyCode_GetExtra(reinterpret_cast<PyObject*>(code), codeExtraIndex, &extra);
#endif
    return static_cast<CodeInfo*>(extra);
}

bool cacheInfo(PyCodeObject* code, CodeInfo* info) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyUnstable_Code_SetExtra(reinterpret_cast<PyObject*>(code), codeExtraIndex, info) == 0;
#else
    return _PyCode_SetExtra(reinterpret_cast<PyObject*>(code), codeExtraIndex, info) == 0;
#endif
}

#if PY_VERSION_HEX >= 0x030C0000
// The line of an instruction (3.12+ callbacks give offsets), remembered for
// a few offsets per code object.
int lineAt(CodeInfo& info, PyCodeObject* code, int offset) {
    for (const auto& [at, line] : info.lines) {
        if (at == offset) return line;
    }
    int line = PyCode_Addr2Line(code, offset);
    if (info.lines.size() < kCachedLines) info.lines.emplace_back(offset, line);
    return line;
}
#endif

PyObject* moduleNameKey = nullptr;  // "__name__"

std::string_view moduleNameOf(PyObject* globals) {
    if (!globals || !PyDict_Check(globals)) return {};
    PyObject* name = PyDict_GetItemWithError(globals, moduleNameKey);
    return name ? utf8(name) : (PyErr_Clear(), std::string_view{});
}

std::string_view qualnameOf(PyCodeObject* code) {
#if PY_VERSION_HEX >= 0x030B0000
    return utf8(code->co_qualname);
#else
    return utf8(code->co_name);
#endif
}

// --- Recorders --------------------------------------------------------------------

class Tracer;

// A selected frame found on a thread's stack when it starts being recorded.
struct StackEntry {
    uint32_t code;
    int line;
    uint64_t task;
};

// The writer takes lines as unsigned numbers; a code location with no line
// (-1 on 3.12+) is kept at line 0.
uint32_t lineNumber(int line) {
    return line < 0 ? 0 : static_cast<uint32_t>(line);
}

// One thread's recording, a Python object so that its thread state can own
// it. Constructed in memory from PyObject_Malloc (placement new).
struct Recorder {
    PyObject base;
    Tracer* tracer = nullptr;            // null once detached
    ThreadTrace* out = nullptr;          // the writer's, from the thread's first event
    std::vector<StackEntry> startStack;  // entered when the thread first runs
    bool precise = false;
    uint64_t task = 0;             // the task last written
    std::vector<uint64_t> frames;  // the task of each selected frame entered, not left

    void line(int number) { out->line(lineNumber(number)); }
    void exception(int number) { out->exception(lineNumber(number)); }
    void switchTo(uint64_t newTask) {
        if (newTask == task) return;
        task = newTask;
        out->taskSwitch(newTask);
    }
    void enter(uint32_t code, int number, uint64_t frameTask) {
        frames.push_back(frameTask);
        switchTo(frameTask);
        out->call(code, lineNumber(number));
    }
    void leave() {
        out->ret();
        if (frames.empty()) return;
        frames.pop_back();
        if (!frames.empty()) switchTo(frames.back());
    }
    void setPrecise(bool on) {
        precise = on;
        out->precise(on);
    }

    bool bind();
    void detach();
};

PyTypeObject RecorderType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject* asObject(Recorder* recorder) {
    return reinterpret_cast<PyObject*>(recorder);
}

// --- The recording ------------------------------------------------------------------

uint64_t nextSession = 1;

class Tracer {
  public:
    Tracer(TraceSelection selection, TraceTarget target, std::unique_ptr<TraceWriter> writer)
        : session_(nextSession++),
          selection_(std::move(selection)),
          target_(std::move(target)),
          writer_(std::move(writer)) {}

    uint64_t session() const { return session_; }
    TraceWriter& writer() { return *writer_; }
    const TraceSelection& selection() const { return selection_; }
    const TraceTarget& target() const { return target_; }

    // What to do with code, decided at its first sight in this recording
    // by the module of frame (null: of the running frame); null when it
    // cannot be known (no memory): not recorded.
    CodeInfo* info(PyCodeObject* code, PyFrameObject* frame) {
        CodeInfo* info = cachedInfo(code);
        if (info && info->session == session_) [[likely]]
            return info;
        return decide(code, frame ? globalsOf(frame) : PyEval_GetGlobals(), info);
    }
    void noteCoroutine(const CodeInfo& info) { coroutinesSeen_ |= info.coroutine; }

    // The task a selected frame entered now runs in; frame() gives the frame
    // when it must be looked at.
    template <typename FrameSource>
    uint64_t entryTask(const Recorder& recorder, const CodeInfo& info, FrameSource frame) const {
        if (info.coroutine) return taskOf(frame());
        if (!recorder.frames.empty()) return recorder.frames.back();
        return coroutinesSeen_ ? taskOf(frame()) : 0;
    }

    Recorder* newRecorder();
    void forget(Recorder* recorder) { std::erase(recorders_, recorder); }
    std::vector<StackEntry> selectedStack(PyThreadState* thread);
    void detachAll() {
        while (!recorders_.empty()) recorders_.back()->detach();
    }
    // The writer, to be destroyed without the GIL: it waits for its thread.
    std::unique_ptr<TraceWriter> takeWriter() { return std::move(writer_); }
    // In a forked child: the writer's thread did not survive the fork, and
    // its buffers belong to the parent. The recorders let go of it without a
    // word to it, and the writer is leaked (destroying it would wait for a
    // thread that is not there).
    void abandon() {
        for (Recorder* recorder : recorders_) {
            recorder->out = nullptr;
            recorder->tracer = nullptr;
        }
        recorders_.clear();
        static_cast<void>(writer_.release());
    }

  private:
    CodeInfo* decide(PyCodeObject* code, PyObject* globals, CodeInfo* stale);

    uint64_t session_;
    TraceSelection selection_;
    TraceTarget target_;
    std::unique_ptr<TraceWriter> writer_;
    std::vector<Recorder*> recorders_;  // borrowed: a recorder leaves when freed or detached
    bool coroutinesSeen_ = false;
};

Tracer* activeTracer = nullptr;
// The active recording's session, for the 3.12+ per-thread lookup; 0 is none.
uint64_t activeSession = 0;

bool instrument(PyCodeObject* code);  // 3.12+: the local events of selected code

CodeInfo* Tracer::decide(PyCodeObject* code, PyObject* globals, CodeInfo* stale) {
    CodeInfo* info = stale ? stale : new (std::nothrow) CodeInfo;
    if (!info) return nullptr;
    if (!stale && !cacheInfo(code, info)) {
        delete info;
        PyErr_Clear();
        return nullptr;
    }
    info->session = session_;
    info->coroutine = (code->co_flags & kCoroutineFlags) != 0;
    std::string_view file = utf8(code->co_filename);
    std::string_view module = moduleNameOf(globals);
    info->selected = selection_.matches(module, file) && instrument(code);
    if (info->selected) {
        info->id = writer_->defineCode(file, qualnameOf(code), code->co_firstlineno);
        writer_->keepSource(file);
    }
    return info;
}

Recorder* Tracer::newRecorder() {
    void* memory = PyObject_Malloc(sizeof(Recorder));
    if (!memory) return reinterpret_cast<Recorder*>(PyErr_NoMemory());
    auto* recorder = new (memory) Recorder;
    PyObject_Init(asObject(recorder), &RecorderType);
    recorder->tracer = this;
    recorders_.push_back(recorder);
    return recorder;
}

// On the recorder's own thread: its ThreadTrace, which starts by entering
// the frames found on its stack, so that its events have the right code and
// depth (trace_writer.h).
bool Recorder::bind() {
    if (!tracer) return false;
    out = tracer->writer().thread(static_cast<int32_t>(gettid()));
    for (const StackEntry& entry : startStack) enter(entry.code, entry.line, entry.task);
    startStack.clear();
    return true;
}

void Recorder::detach() {
    if (!tracer) return;
    // Another thread may end this one's ThreadTrace: the GIL orders it after
    // the owner's last append.
    if (out) out->end();
    out = nullptr;
    startStack.clear();
    tracer->forget(this);
    tracer = nullptr;
}

// The selected frames on a thread's stack when the recording starts,
// outermost first: the recording of the thread begins by entering them.
// 3.8-3.11 also turn the line events of the others off, as their call event
// would have.
void setTraceLines(PyFrameObject* frame, bool on);

std::vector<StackEntry> Tracer::selectedStack(PyThreadState* thread) {
    std::vector<PyFrameObject*> stack;  // new references, innermost first
    for (PyFrameObject* frame = innermostFrame(thread); frame; frame = callerOf(frame))
        stack.push_back(frame);
    std::vector<StackEntry> selected;
    for (auto frame = stack.rbegin(); frame != stack.rend(); ++frame) {
        CodeInfo* code = info(codeOf(*frame), *frame);
        bool isSelected = code && code->selected;
        setTraceLines(*frame, isSelected);
        if (!isSelected) continue;
        noteCoroutine(*code);
        int line = PyFrame_GetLineNumber(*frame);
#if PY_VERSION_HEX < 0x030A0000
        (*frame)->f_lineno = line;  // 3.8-3.9 update it at traced line events only
#endif
        selected.push_back({code->id, line, taskOf(*frame)});
    }
    for (PyFrameObject* frame : stack) Py_DECREF(frame);
    return selected;
}

void recorderDealloc(PyObject* object);

bool readyRecorderType() {
    if (RecorderType.tp_flags & Py_TPFLAGS_READY) return true;
    RecorderType.tp_name = "vigil._vigil.TraceRecorder";
    RecorderType.tp_basicsize = sizeof(Recorder);
    RecorderType.tp_flags = Py_TPFLAGS_DEFAULT;
    RecorderType.tp_doc = "One thread's recording (vigil.trace).";
    RecorderType.tp_dealloc = recorderDealloc;
    return PyType_Ready(&RecorderType) == 0;
}

// The backend's part, defined per version below.
bool startBackend(Tracer& tracer);
void stopBackend();
bool attach(PyThreadState* thread, Recorder* recorder);
Recorder* attachedRecorder(PyThreadState* thread);
void forgetThisThread(Recorder* recorder);

// This thread's recorder, made when the thread has none (before 3.12 a
// thread not running the trace function yet; on 3.12+ any new thread); null
// when not recording. Before 3.12 the frames it runs began without the
// trace function: the stack is recorded (their line events turned off or
// not). On 3.12+ every frame of a new thread began during the recording,
// and the adoption happens in the callback of its first selected one.
constexpr bool kAdoptStack = PY_VERSION_HEX < 0x030C0000;

Recorder* adoptThisThread() {
    Tracer* tracer = activeTracer;
    if (!tracer) return nullptr;
    PyThreadState* thread = PyThreadState_Get();
    Recorder* recorder = attachedRecorder(thread);
    if (!recorder || recorder->tracer != tracer) {
        recorder = tracer->newRecorder();
        if (recorder && kAdoptStack) recorder->startStack = tracer->selectedStack(thread);
        bool attached = recorder && attach(thread, recorder);
        Py_XDECREF(recorder);  // the thread state holds it when attached
        if (!attached) {
            PyErr_Clear();
            return nullptr;
        }
    }
    if (!recorder->out) recorder->bind();
    return recorder;
}

void recorderDealloc(PyObject* object) {
    auto* recorder = reinterpret_cast<Recorder*>(object);
    recorder->detach();
    forgetThisThread(recorder);
    recorder->~Recorder();
    PyObject_Free(recorder);
}

#if PY_VERSION_HEX < 0x030C0000
// --- 3.8-3.11: a C trace function in every thread --------------------------------

#if PY_VERSION_HEX >= 0x030B0000
// 3.11 made the frame object's struct private; its member table still says
// where f_trace_lines is (Objects/frameobject.c, frame_memberlist).
Py_ssize_t traceLinesOffset = -1;

bool findTraceLinesOffset() {
    for (PyMemberDef* member = PyFrame_Type.tp_members; member && member->name; ++member) {
        if (std::strcmp(member->name, "f_trace_lines") == 0 && member->type == T_BOOL) {
            traceLinesOffset = member->offset;
            return true;
        }
    }
    PyErr_SetString(PyExc_RuntimeError, "frame objects have no f_trace_lines member");
    return false;
}

char& traceLinesOf(PyFrameObject* frame) {
    return *(reinterpret_cast<char*>(frame) + traceLinesOffset);
}

int lineOf(PyFrameObject* frame) {
    return PyFrame_GetLineNumber(frame);  // f_lineno, set for the trace function
}
#else
bool findTraceLinesOffset() {
    return true;
}

char& traceLinesOf(PyFrameObject* frame) {
    return frame->f_trace_lines;
}

int lineOf(PyFrameObject* frame) {
    return frame->f_lineno;  // kept up to date while tracing (set for the call on 3.10)
}
#endif

void setTraceLines(PyFrameObject* frame, bool on) {
    traceLinesOf(frame) = on;
}

// f_trace_lines stays on only in the frames of selected code: their return
// and exception events need no other lookup.
bool selectedFrame(PyFrameObject* frame) {
    return traceLinesOf(frame) != 0;
}

void onCall(Recorder& recorder, PyFrameObject* frame) {
    if (!recorder.tracer) [[unlikely]]
        return;  // detached: this thread lost its trace function at the stop
    Tracer& tracer = *recorder.tracer;
    CodeInfo* info = tracer.info(codeOf(frame), frame);
    if (!info || !info->selected) {
        if (info) tracer.noteCoroutine(*info);
        setTraceLines(frame, false);
        return;
    }
    tracer.noteCoroutine(*info);
    setTraceLines(frame, true);  // a generator an earlier recording left unselected
    recorder.enter(info->id, lineOf(frame),
                   tracer.entryTask(recorder, *info, [frame] { return frame; }));
}

int traceFunction(PyObject* object, PyFrameObject* frame, int what, PyObject*) {
    auto& recorder = *reinterpret_cast<Recorder*>(object);
    if (!recorder.out && !recorder.bind()) [[unlikely]]
        return 0;
    switch (what) {
        case PyTrace_LINE:
            recorder.line(lineOf(frame));
            break;
        case PyTrace_CALL:
            onCall(recorder, frame);
            break;
        case PyTrace_RETURN:
            if (selectedFrame(frame)) recorder.leave();
            break;
        case PyTrace_EXCEPTION:
            if (selectedFrame(frame)) recorder.exception(lineOf(frame));
            break;
        default:
            break;
    }
    return 0;
}

#if PY_VERSION_HEX < 0x03090000
// 3.8 has no _PyEval_SetTrace: the fields PyEval_SetTrace sets for its own
// thread (Python/ceval.c), for any thread.
void setTraceFields(PyThreadState* thread, Py_tracefunc function, PyObject* object) {
    PyObject* previous = thread->c_traceobj;
    Py_XINCREF(object);
    thread->c_traceobj = object;
    thread->c_tracefunc = function;
    thread->use_tracing = function || thread->c_profilefunc;
    Py_XDECREF(previous);
}

// 3.8 also counts the threads that trace (_PyRuntime.ceval.tracing_possible:
// while it is 0 no thread gets line events), and only PyEval_SetTrace keeps
// that count. The recording counts as one thread: PyEval_SetTrace at its
// start and at its stop, the calling thread's own fields put back around.
void countRecording(bool on) {
    PyThreadState* current = PyThreadState_Get();
    Py_tracefunc function = current->c_tracefunc;
    PyObject* object = current->c_traceobj;
    Py_XINCREF(object);
    setTraceFields(current, on ? nullptr : traceFunction, nullptr);
    PyEval_SetTrace(on ? traceFunction : nullptr, nullptr);
    PyErr_Clear();
    setTraceFields(current, function, object);
    Py_XDECREF(object);
}
#endif

bool attach(PyThreadState* thread, Recorder* recorder) {
#if PY_VERSION_HEX >= 0x03090000
    return _PyEval_SetTrace(thread, traceFunction, asObject(recorder)) == 0;
#else
    setTraceFields(thread, traceFunction, asObject(recorder));
    return true;
#endif
}

void detachThread(PyThreadState* thread) {
    if (thread->c_tracefunc != traceFunction) return;
#if PY_VERSION_HEX >= 0x03090000
    if (_PyEval_SetTrace(thread, nullptr, nullptr) < 0) PyErr_Clear();
#else
    setTraceFields(thread, nullptr, nullptr);
#endif
}

Recorder* attachedRecorder(PyThreadState* thread) {
    if (thread->c_tracefunc != traceFunction) return nullptr;
    return reinterpret_cast<Recorder*>(thread->c_traceobj);
}

void forgetThisThread(Recorder*) {}

bool startBackend(Tracer&) {
    if (!findTraceLinesOffset()) return false;
#if PY_VERSION_HEX < 0x03090000
    countRecording(true);
#endif
    return true;
}

void stopBackend() {
    PyInterpreterState* interpreter = thisInterpreter();
    for (PyThreadState* thread = PyInterpreterState_ThreadHead(interpreter); thread;
         thread = PyThreadState_Next(thread))
        detachThread(thread);
#if PY_VERSION_HEX < 0x03090000
    countRecording(false);
#endif
}

// threading.settrace(trace_thread_hook): each new threading.Thread calls
// sys.settrace with it, and its first call (the thread's run()) puts the C
// trace function in place of the Python one (and of its count on 3.8). The
// frame called is on the stack the adoption records: that is its call.
PyObject* threadHook(PyObject*, PyObject* const*, Py_ssize_t) {
    PyEval_SetTrace(nullptr, nullptr);
    PyErr_Clear();
    adoptThisThread();
    Py_RETURN_NONE;
}

Recorder* thisThreadRecorder() {
    return adoptThisThread();
}

bool instrument(PyCodeObject*) {
    return true;
}

#else
// --- 3.12+: sys.monitoring -----------------------------------------------------------

void setTraceLines(PyFrameObject*, bool) {}

struct Monitoring {
    PyObject* module = nullptr;   // sys.monitoring
    PyObject* disable = nullptr;  // sys.monitoring.DISABLE
    int tool = -1;
    long localEvents = 0;
    std::vector<PyObject*> instrumented;  // code objects with local events set
} monitoring;

PyObject* threadDictKey = nullptr;

// The recorder of this thread, found in one thread-local load while
// recording; the thread's dict owns it.
struct ThreadSlot {
    uint64_t session = 0;
    Recorder* recorder = nullptr;
};
thread_local ThreadSlot threadSlot;

Recorder* thisThreadRecorder() {
    if (threadSlot.session == activeSession) [[likely]]  // sessions start at 1
        return threadSlot.recorder;
    Recorder* recorder = adoptThisThread();
    if (recorder) threadSlot = {activeSession, recorder};
    return recorder;
}

void forgetThisThread(Recorder* recorder) {
    if (threadSlot.recorder == recorder) threadSlot = {};
}

bool attach(PyThreadState* thread, Recorder* recorder) {
    if (!thread->dict && !(thread->dict = PyDict_New())) return false;
    return PyDict_SetItem(thread->dict, threadDictKey, asObject(recorder)) == 0;
}

Recorder* attachedRecorder(PyThreadState* thread) {
    PyObject* value = thread->dict ? PyDict_GetItemWithError(thread->dict, threadDictKey) : nullptr;
    if (!value) PyErr_Clear();
    return value && Py_IS_TYPE(value, &RecorderType) ? reinterpret_cast<Recorder*>(value) : nullptr;
}

PyObject* none() {
    Py_RETURN_NONE;
}

PyObject* disable() {
    return Py_NewRef(monitoring.disable);
}

// The callbacks' small int arguments (offsets, lines).
int smallInt(PyObject* value) {
    auto* number = reinterpret_cast<PyLongObject*>(value);
    if (PyUnstable_Long_IsCompact(number))
        return static_cast<int>(PyUnstable_Long_CompactValue(number));
    long result = PyLong_AsLong(value);
    PyErr_Clear();
    return static_cast<int>(result);
}

PyCodeObject* codeArgument(PyObject* const* args) {
    return reinterpret_cast<PyCodeObject*>(args[0]);
}

// The selected code's CodeInfo, or null for code outside the selection.
CodeInfo* selectedInfo(PyCodeObject* code) {
    Tracer* tracer = activeTracer;
    if (!tracer) return nullptr;
    CodeInfo* info = tracer->info(code, nullptr);
    if (info && !info->selected) {
        tracer->noteCoroutine(*info);
        return nullptr;
    }
    return info;
}

void enterFrame(PyCodeObject* code, CodeInfo& info, int offset) {
    Recorder* recorder = thisThreadRecorder();
    if (!recorder) return;
    Tracer& tracer = *recorder->tracer;
    tracer.noteCoroutine(info);
    uint64_t task = tracer.entryTask(*recorder, info, [] { return PyEval_GetFrame(); });
    recorder->enter(info.id, lineAt(info, code, offset), task);
}

// PY_START, PY_RESUME (code, offset): a call, or a generator resumed.
PyObject* onStart(PyObject*, PyObject* const* args, Py_ssize_t) {
    PyCodeObject* code = codeArgument(args);
    CodeInfo* info = selectedInfo(code);
    if (!info) return activeTracer ? disable() : none();
    enterFrame(code, *info, smallInt(args[1]));
    return none();
}

// PY_THROW (code, offset, exception): a generator resumed by throw().
PyObject* onThrow(PyObject*, PyObject* const* args, Py_ssize_t) {
    PyCodeObject* code = codeArgument(args);
    if (CodeInfo* info = selectedInfo(code)) enterFrame(code, *info, smallInt(args[1]));
    return none();
}

// PY_RETURN, PY_YIELD (code, offset, value): local to selected code.
PyObject* onReturn(PyObject*, PyObject* const*, Py_ssize_t) {
    if (Recorder* recorder = thisThreadRecorder()) recorder->leave();
    return none();
}

// PY_UNWIND (code, offset, exception): a frame left by an exception.
PyObject* onUnwind(PyObject*, PyObject* const* args, Py_ssize_t) {
    if (!selectedInfo(codeArgument(args))) return none();
    if (Recorder* recorder = thisThreadRecorder()) recorder->leave();
    return none();
}

void recordException(PyCodeObject* code, CodeInfo& info, int offset) {
    if (Recorder* recorder = thisThreadRecorder()) recorder->exception(lineAt(info, code, offset));
}

// RAISE (code, offset, exception): raised in, or passing through, a frame.
PyObject* onRaise(PyObject*, PyObject* const* args, Py_ssize_t) {
    PyCodeObject* code = codeArgument(args);
    if (CodeInfo* info = selectedInfo(code)) recordException(code, *info, smallInt(args[1]));
    return none();
}

// STOP_ITERATION (code, offset, value), local: sys.settrace reports the
// StopIteration a for loop or an await takes for the end of a generator.
PyObject* onStopIteration(PyObject*, PyObject* const* args, Py_ssize_t) {
    PyCodeObject* code = codeArgument(args);
    if (CodeInfo* info = selectedInfo(code)) recordException(code, *info, smallInt(args[1]));
    return none();
}

// LINE (code, line), local: the hot path.
PyObject* onLine(PyObject*, PyObject* const* args, Py_ssize_t) {
    if (Recorder* recorder = thisThreadRecorder()) recorder->line(smallInt(args[1]));
    return none();
}

// JUMP (code, from, to), local: sys.settrace reports a backward jump to the
// same line (a loop on one line, a comprehension) as that line again, as
// Python/legacy_tracing.c does; any other jump is left to LINE.
PyObject* onJump(PyObject*, PyObject* const* args, Py_ssize_t) {
    PyCodeObject* code = codeArgument(args);
    int from = smallInt(args[1]);
    int to = smallInt(args[2]);
    CodeInfo* info = to <= from ? selectedInfo(code) : nullptr;
    if (!info) return disable();
    int line = lineAt(*info, code, to);
    if (line != lineAt(*info, code, from)) return disable();
    if (line < 0) return none();
    if (Recorder* recorder = thisThreadRecorder()) recorder->line(line);
    return none();
}

struct Callback {
    const char* event;  // the name in sys.monitoring.events
    bool local;         // set on selected code only
    PyMethodDef method;
    PyObject* function = nullptr;
};

Callback callbacks[] = {
    {"PY_START", false, {"trace_py_start", (PyCFunction)(void (*)())onStart, METH_FASTCALL}},
    {"PY_RESUME", false, {"trace_py_resume", (PyCFunction)(void (*)())onStart, METH_FASTCALL}},
    {"PY_THROW", false, {"trace_py_throw", (PyCFunction)(void (*)())onThrow, METH_FASTCALL}},
    {"PY_UNWIND", false, {"trace_py_unwind", (PyCFunction)(void (*)())onUnwind, METH_FASTCALL}},
    {"RAISE", false, {"trace_raise", (PyCFunction)(void (*)())onRaise, METH_FASTCALL}},
    {"PY_RETURN", true, {"trace_py_return", (PyCFunction)(void (*)())onReturn, METH_FASTCALL}},
    {"PY_YIELD", true, {"trace_py_yield", (PyCFunction)(void (*)())onReturn, METH_FASTCALL}},
    {"STOP_ITERATION",
     true,
     {"trace_stop_iteration", (PyCFunction)(void (*)())onStopIteration, METH_FASTCALL}},
    {"LINE", true, {"trace_line", (PyCFunction)(void (*)())onLine, METH_FASTCALL}},
    {"JUMP", true, {"trace_jump", (PyCFunction)(void (*)())onJump, METH_FASTCALL}},
};

// sys.monitoring.<name>(args...) by format; false with an exception set.
template <typename... Args>
bool callMonitoring(const char* name, const char* format, Args... args) {
    PyObject* result = PyObject_CallMethod(monitoring.module, name, format, args...);
    Py_XDECREF(result);
    return result != nullptr;
}

long eventBit(const char* name) {
    PyObject* events = PyObject_GetAttrString(monitoring.module, "events");
    PyObject* bit = events ? PyObject_GetAttrString(events, name) : nullptr;
    long value = bit ? PyLong_AsLong(bit) : -1;
    Py_XDECREF(bit);
    Py_XDECREF(events);
    return value;
}

bool loadMonitoring() {
    if (monitoring.module) return true;
    PyObject* module = PySys_GetObject("monitoring");  // borrowed
    if (!module) {
        PyErr_SetString(PyExc_RuntimeError, "sys.monitoring is missing");
        return false;
    }
    monitoring.disable = PyObject_GetAttrString(module, "DISABLE");
    threadDictKey = PyUnicode_InternFromString("vigil.trace_recorder");
    if (!monitoring.disable || !threadDictKey) return false;
    monitoring.module = Py_NewRef(module);
    for (Callback& callback : callbacks) {
        if (!callback.function && !(callback.function = PyCFunction_New(&callback.method, nullptr)))
            return false;
    }
    return true;
}

// PROFILER_ID, or else one of the ids PEP 669 leaves unnamed.
bool claimTool() {
    for (int tool : {2, 3, 4}) {
        PyObject* owner = PyObject_CallMethod(monitoring.module, "get_tool", "i", tool);
        if (!owner) return false;
        bool free = owner == Py_None;
        Py_DECREF(owner);
        if (free && callMonitoring("use_tool_id", "is", tool, "vigil")) {
            monitoring.tool = tool;
            return true;
        }
        PyErr_Clear();
    }
    PyErr_SetString(PyExc_RuntimeError,
                    "sys.monitoring: tool ids 2-4 are all in use (another profiler or debugger)");
    return false;
}

bool registerCallbacks(long& globalEvents) {
    for (Callback& callback : callbacks) {
        long bit = eventBit(callback.event);
        if (bit < 0) return false;
        (callback.local ? monitoring.localEvents : globalEvents) |= bit;
        if (!callMonitoring("register_callback", "ilO", monitoring.tool, bit, callback.function))
            return false;
    }
    return true;
}

bool instrument(PyCodeObject* code) {
    auto* object = reinterpret_cast<PyObject*>(code);
    if (!callMonitoring("set_local_events", "iOl", monitoring.tool, object,
                        monitoring.localEvents)) {
        PyErr_Clear();  // a shim code object, say: not recorded
        return false;
    }
    monitoring.instrumented.push_back(Py_NewRef(object));
    return true;
}

void releaseTool() {
    for (PyObject* code : monitoring.instrumented) {
        if (!callMonitoring("set_local_events", "iOi", monitoring.tool, code, 0)) PyErr_Clear();
        Py_DECREF(code);
    }
    monitoring.instrumented.clear();
    for (Callback& callback : callbacks) {
        long bit = eventBit(callback.event);
        if (bit < 0 || !callMonitoring("register_callback", "ilO", monitoring.tool, bit, Py_None))
            PyErr_Clear();
    }
    if (!callMonitoring("free_tool_id", "i", monitoring.tool)) PyErr_Clear();
    monitoring.tool = -1;
}

bool startBackend(Tracer&) {
    if (!loadMonitoring() || !claimTool()) return false;
    long globalEvents = 0;
    monitoring.localEvents = 0;
    // restart_events: locations an earlier recording (or another tool with
    // this id) disabled would stay silent for this one.
    if (registerCallbacks(globalEvents) && callMonitoring("restart_events", nullptr) &&
        callMonitoring("set_events", "il", monitoring.tool, globalEvents))
        return true;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    releaseTool();
    PyErr_Restore(type, value, traceback);
    return false;
}

void stopBackend() {
    if (monitoring.tool < 0) return;
    if (!callMonitoring("set_events", "ii", monitoring.tool, 0)) PyErr_Clear();
    releaseTool();
}
#endif

// --- Starting and stopping ---------------------------------------------------------

// Recorders for every thread of the interpreter, each holding its stack.
bool attachAll(Tracer& tracer) {
    PyThreadState* current = PyThreadState_Get();
    for (PyThreadState* thread = PyInterpreterState_ThreadHead(thisInterpreter()); thread;
         thread = PyThreadState_Next(thread)) {
        Recorder* recorder = tracer.newRecorder();
        if (!recorder) return false;
        recorder->startStack = tracer.selectedStack(thread);
        bool attached = attach(thread, recorder);
        if (attached && thread == current) recorder->bind();
        Py_DECREF(recorder);
        if (!attached) return false;
    }
    return true;
}

// What the first recording needs once.
bool prepare() {
#ifdef Py_GIL_DISABLED
    PyErr_SetString(PyExc_RuntimeError, "vigil.trace needs the GIL (not a free-threaded build)");
    return false;
#endif
    if (!moduleNameKey && !(moduleNameKey = PyUnicode_InternFromString("__name__"))) return false;
    return readyRecorderType() && requestCodeExtraIndex();
}

}  // namespace

namespace {

// Opens the writer, or sets a Python OSError.
std::unique_ptr<TraceWriter> openWriter(const TraceTarget& target,
                                        const std::string& parentRunDir) {
    try {
        return TraceWriter::open(target.baseDir, target.processName, getpid(), target.options,
                                 parentRunDir);
    } catch (const Error& error) {
        PyErr_Format(PyExc_OSError, "vigil.trace: %s", error.what());
        return nullptr;
    }
}

// Makes tracer the active recording and gives every thread a recorder;
// false (and nothing recording) with a Python exception set.
bool activate(Tracer* tracer) {
    activeTracer = tracer;
    activeSession = tracer->session();
    if (attachAll(*tracer)) return true;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    stopTracing();
    PyErr_Restore(type, value, traceback);
    return false;
}

}  // namespace

bool startTracing(TraceSelection selection, const TraceTarget& target) {
    if (activeTracer) {
        PyErr_SetString(PyExc_RuntimeError, "vigil.trace is already recording");
        return false;
    }
    if (!prepare()) return false;
    std::unique_ptr<TraceWriter> writer = openWriter(target, "");
    if (!writer) return false;
    // stopTracing deletes it
    auto* tracer = new Tracer(std::move(selection), target, std::move(writer));
    if (!startBackend(*tracer)) {
        delete tracer;
        return false;
    }
    return activate(tracer);
}

bool stopTracing() {
    Tracer* tracer = activeTracer;
    if (!tracer) return false;
    stopBackend();
    activeTracer = nullptr;
    activeSession = 0;
    tracer->detachAll();
    std::unique_ptr<TraceWriter> writer = tracer->takeWriter();
    delete tracer;
    Py_BEGIN_ALLOW_THREADS;
    writer.reset();  // writes what the threads appended, and joins its thread
    Py_END_ALLOW_THREADS;
    return true;
}

void flushTracing() {
    if (!activeTracer) return;
    TraceWriter& writer = activeTracer->writer();
    Py_BEGIN_ALLOW_THREADS;
    writer.flush();
    Py_END_ALLOW_THREADS;
}

bool tracingAfterForkInChild() {
    Tracer* parent = activeTracer;
    if (!parent) return true;
    std::string runDir = parent->writer().runDir();
    parent->abandon();
    activeTracer = nullptr;
    activeSession = 0;
    std::unique_ptr<TraceWriter> writer = openWriter(parent->target(), runDir);
    auto* tracer =
        writer ? new Tracer(parent->selection(), parent->target(), std::move(writer)) : nullptr;
    delete parent;
    if (!tracer) {
        stopBackend();
        return false;
    }
    return activate(tracer);
}

std::optional<TraceStats> tracingStats(std::string& dir) {
    if (!activeTracer) return std::nullopt;
    dir = activeTracer->writer().dir();
    return activeTracer->writer().stats();
}

bool setPreciseTimestamps(bool on) {
    Recorder* recorder = activeTracer ? thisThreadRecorder() : nullptr;
    if (!recorder) return false;
    bool previous = recorder->precise;
    if (previous != on) recorder->setPrecise(on);
    return previous;
}

// --- The module's functions ------------------------------------------------------------

namespace {

bool readStrings(PyObject* sequence, const char* what, std::vector<std::string>& out) {
    PyObject* items = PySequence_Fast(sequence, what);
    if (!items) return false;
    for (Py_ssize_t index = 0; index < PySequence_Fast_GET_SIZE(items); ++index) {
        PyObject* item = PySequence_Fast_GET_ITEM(items, index);
        const char* text = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : nullptr;
        if (!text) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s: not a str: %R", what, item);
            Py_DECREF(items);
            return false;
        }
        out.emplace_back(text);
    }
    Py_DECREF(items);
    return true;
}

bool readSelection(PyObject* packages, PyObject* paths, TraceSelection& selection) {
    std::vector<std::string> packageNames, pathGlobs;
    if (!readStrings(packages, "packages", packageNames) || !readStrings(paths, "paths", pathGlobs))
        return false;
    for (std::string& name : packageNames) selection.addPackage(std::move(name));
    for (const std::string& glob : pathGlobs) {
        std::string problem;
        if (!selection.addPath(glob, problem)) {
            PyErr_Format(PyExc_ValueError, "paths: %s: %s", glob.c_str(), problem.c_str());
            return false;
        }
    }
    return true;
}

// The writer's one line when the recording stops by itself (a full disk):
// on stderr, from the writer's thread, in one write.
void reportStopped(const std::string& line) {
    std::string text = "vigil: " + line + "\n";
    ssize_t written = write(STDERR_FILENO, text.data(), text.size());
    static_cast<void>(written);  // nowhere left to say it
}

PyObject* traceStart(PyObject*, PyObject* args, PyObject* kwargs) {
    static const char* keywords[] = {"packages", "paths", "dir", "name", "max_bytes", nullptr};
    PyObject *packages, *paths;
    const char *dir, *name;
    long long maxBytes = TraceLimits{}.maxBytes;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOss|L:trace_start",
                                     const_cast<char**>(keywords), &packages, &paths, &dir, &name,
                                     &maxBytes))
        return nullptr;
    TraceSelection selection;
    if (!readSelection(packages, paths, selection)) return nullptr;
    TraceTarget target{dir, name, {}};
    target.options.limits.maxBytes = maxBytes;
    target.options.report = reportStopped;
    if (!startTracing(std::move(selection), target)) return nullptr;
    return PyUnicode_DecodeFSDefault(activeTracer->writer().dir().c_str());
}

PyObject* traceStop(PyObject*, PyObject*) {
    return PyBool_FromLong(stopTracing());
}

PyObject* traceRecording(PyObject*, PyObject*) {
    return PyBool_FromLong(activeTracer != nullptr);
}

PyObject* tracePrecise(PyObject*, PyObject* on) {
    int flag = PyObject_IsTrue(on);
    if (flag < 0) return nullptr;
    return PyBool_FromLong(setPreciseTimestamps(flag != 0));
}

PyObject* traceFlush(PyObject*, PyObject*) {
    flushTracing();
    Py_RETURN_NONE;
}

PyObject* traceAfterForkInChild(PyObject*, PyObject*) {
    if (!tracingAfterForkInChild()) return nullptr;
    Py_RETURN_NONE;
}

PyObject* traceStats(PyObject*, PyObject*) {
    std::string dir;
    std::optional<TraceStats> stats = tracingStats(dir);
    if (!stats) Py_RETURN_NONE;
    return Py_BuildValue("{s:N,s:K,s:K,s:L,s:K,s:O}", "dir", PyUnicode_DecodeFSDefault(dir.c_str()),
                         "events", static_cast<unsigned long long>(stats->events), "blocks",
                         static_cast<unsigned long long>(stats->blocks), "bytes",
                         static_cast<long long>(stats->bytesOnDisk), "segments_dropped",
                         static_cast<unsigned long long>(stats->segmentsDropped), "stopped",
                         stats->stopped ? Py_True : Py_False);
}

// (thread, task, kind, file, qualname, line, depth, time, precise): see
// trace_read's doc.
PyObject* eventTuple(const TraceReader& reader, const TraceEvent& event) {
    const TraceCode* code = reader.code(event.code);
    PyObject* file = code ? PyUnicode_DecodeFSDefaultAndSize(code->file.data(), code->file.size())
                          : (Py_INCREF(Py_None), Py_None);
    PyObject* qualname =
        code ? PyUnicode_FromStringAndSize(code->qualname.data(), code->qualname.size())
             : (Py_INCREF(Py_None), Py_None);
    return Py_BuildValue("(iKsNNIILO)", event.thread, static_cast<unsigned long long>(event.task),
                         traceEventKindName(event.kind), file, qualname, event.line, event.depth,
                         static_cast<long long>(event.estimatedTimeNs),
                         event.precise ? Py_True : Py_False);
}

PyObject* traceRead(PyObject*, PyObject* args) {
    const char* dir;
    if (!PyArg_ParseTuple(args, "s:trace_read", &dir)) return nullptr;
    std::vector<TraceEvent> events;
    std::optional<TraceReader> reader;
    std::string error;
    try {
        reader.emplace(dir);
        events = reader->events();
        if (reader->error()) error = reader->error()->what();
    } catch (const Error& failure) {
        PyErr_Format(PyExc_OSError, "%s", failure.what());
        return nullptr;
    }
    PyObject* list = PyList_New(0);
    for (const TraceEvent& event : events) {
        PyObject* tuple = list ? eventTuple(*reader, event) : nullptr;
        if (!tuple || PyList_Append(list, tuple) < 0) Py_CLEAR(list);
        Py_XDECREF(tuple);
        if (!list) return nullptr;
    }
    return Py_BuildValue("(Ns)", list, error.empty() ? nullptr : error.c_str());
}

PyMethodDef traceFunctions[] = {
    {"trace_start", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(traceStart)),
     METH_VARARGS | METH_KEYWORDS,
     "trace_start(packages, paths, dir, name, max_bytes=1 GiB): records the execution of the "
     "code of these packages (module names) and files (globs), in every thread, into a new run "
     "of dir (<dir>/<YYMMDD-HHMMSS>/<name>/, max_bytes at most, 0: no limit); returns that "
     "directory."},
    {"trace_stop", traceStop, METH_NOARGS,
     "Stops the recording (every thread's last events are written); False if none ran."},
    {"trace_recording", traceRecording, METH_NOARGS, "Whether a recording runs."},
    {"trace_precise", tracePrecise, METH_O,
     "trace_precise(on) -> bool: whether this thread's events carry a timestamp from now on; "
     "returns the previous setting (False when not recording)."},
    {"trace_flush", traceFlush, METH_NOARGS,
     "Returns once every event appended so far is in the trace's files."},
    {"trace_after_fork_in_child", traceAfterForkInChild, METH_NOARGS,
     "In a forked child: records on into <run>/<name>-<pid>/ with a writer of its own."},
    {"trace_stats", traceStats, METH_NOARGS,
     "The recording's directory and counts (events and blocks written, bytes on disk, "
     "segments dropped, stopped), or None."},
    {"trace_read", traceRead, METH_VARARGS,
     "trace_read(dir) -> (events, error): a trace directory's events in time order, each "
     "(thread, task, kind, file, qualname, line, depth, time, precise); kind: call, line, "
     "return, exception, task; file and qualname None outside any recorded frame; error: the "
     "reader's message for a bad block (the events before it are there), else None."},
#if PY_VERSION_HEX < 0x030C0000
    {"trace_thread_hook", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(threadHook)),
     METH_FASTCALL, "Given to threading.settrace: records each new thread."},
#endif
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

bool addTraceFunctions(PyObject* module) {
    return PyModule_AddFunctions(module, traceFunctions) == 0;
}

}  // namespace vigil::agent
